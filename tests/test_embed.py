"""Post-hoc embedding of save_pretrained checkpoint folders: contents, order, resume, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import cli_error, tiny_vit, vit_processor
from PIL import Image

from spotreview.cli import cli
from spotreview.embedding import models
from spotreview.embedding.embed import Embedded, embed
from spotreview.embedding.forward import preprocess
from spotreview.embedding.models import bf16_is_native, load_checkpoint, resolve_device, resolve_precision
from spotreview.errors import ModelError, RunDirError, SpotreviewError
from spotreview.rundir.evalset import read_eval
from spotreview.rundir.run import Run

STEPS = (0, 20, 100)  # 100 sorts before 20 as text


def named(model, names=("dark", "light")):
    """``model`` with the class names of :func:`image_folder` in its config, as a Trainer checkpoint has."""
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {c: k for k, c in enumerate(names)}
    return model


def save_checkpoints(root, steps=STEPS, *, head=True, processor_in="checkpoint"):
    """checkpoint-STEP dirs of a tiny ViT (different weights each) as a Trainer would leave them."""
    for k, step in enumerate(steps):
        path = root / f"checkpoint-{step}"
        named(tiny_vit(k, head=head, num_labels=2)).save_pretrained(path)
        if processor_in == "checkpoint":
            vit_processor().save_pretrained(path)
    if processor_in == "run":
        vit_processor().save_pretrained(root / "processor")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Two classes of seeded images in mixed modes and sizes."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for k in range(10):
        folder = root / ("dark" if k % 2 else "light")
        folder.mkdir(exist_ok=True)
        size = (8 + k, 12 - k % 3)
        im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        im = {0: im, 1: im.convert("L"), 2: im.convert("RGBA"), 3: im.convert("P")}[k % 4]
        im.save(folder / f"{k:02d}.png")
    return root


def test_embeds_every_checkpoint_of_a_foreign_folder_in_step_order(tmp_path, image_folder):
    save_checkpoints(tmp_path)
    done = embed(tmp_path, images=image_folder, precision="fp32", batch_size=4, quiet=True)
    assert isinstance(done, Embedded)
    assert done.steps == done.snapshots == [0, 20, 100]
    assert (done.device, done.precision, done.batch_size, done.compiled) == ("cpu", "fp32", 4, False)
    run = Run(tmp_path)
    assert done.run.root == run.root and done.seconds == run.read_manifest()["embed"]["seconds"]
    assert run.snapshots() == [0, 20, 100]
    table = read_eval(run)
    assert list(table.columns) == ["id", "label", "class_name", "image"] and len(table) == 10
    assert sorted(set(table["class_name"])) == ["dark", "light"]
    assert all(run.image_path(i).is_file() for i in table["id"])
    assert run.read_manifest()["images"] == str(image_folder)
    for step in STEPS:
        emb, probs = np.load(run.embedding_path(step)), np.load(run.probs_path(step))
        assert emb.shape == (10, 16) and emb.dtype == np.float32
        assert probs.shape == (10, 2) and probs.dtype == np.float32
        assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert not np.allclose(np.load(run.embedding_path(0)), np.load(run.embedding_path(100)))

    # the embedding is the CLS row of the base model's last hidden state (after the final layer norm)
    model = load_checkpoint(tmp_path / "checkpoint-20")
    from spotreview.embedding.models import load_processor
    from spotreview.rundir.evalset import read_eval_images

    pixels = preprocess(read_eval_images(run), load_processor(run, tmp_path / "checkpoint-20"), quiet=True)
    with torch.no_grad():
        expected = model.vit(pixel_values=pixels).last_hidden_state[:, 0].numpy()
        logits = model(pixel_values=pixels).logits
    np.testing.assert_allclose(np.load(run.embedding_path(20)), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.load(run.probs_path(20)), torch.softmax(logits, -1).numpy(), atol=1e-5)


def test_resume_recomputes_only_the_removed_snapshot(tmp_path, image_folder):
    save_checkpoints(tmp_path, processor_in="run")
    assert embed(tmp_path, images=image_folder, precision="fp32", quiet=True).steps == [0, 20, 100]
    run = Run(tmp_path)
    before = {s: run.embedding_path(s).stat().st_mtime_ns for s in STEPS}
    kept = np.load(run.embedding_path(20))
    run.embedding_path(20).unlink()

    # resuming needs no --images: the folder has its eval.csv now (giving the same one again is fine too)
    assert embed(tmp_path, images=image_folder, precision="fp32", quiet=True).steps == [20]
    assert {s: run.embedding_path(s).stat().st_mtime_ns for s in (0, 100)} == {s: before[s] for s in (0, 100)}
    np.testing.assert_allclose(np.load(run.embedding_path(20)), kept, rtol=1e-5, atol=1e-6)
    assert embed(tmp_path, quiet=True).steps == []

    result = CliRunner().invoke(cli, ["embed", str(tmp_path), "-q"])
    assert result.exit_code == 0
    assert f"Nothing to embed: all 3 snapshots in {run.embeddings_dir} are up to date" in result.output
    assert f"Next: spotreview analyze {tmp_path}" in result.output


def test_model_without_head_gives_embeddings_only(tmp_path, image_folder):
    save_checkpoints(tmp_path, steps=(5,), head=False)
    assert embed(tmp_path, images=image_folder, eval_size=4, quiet=True).steps == [5]
    run = Run(tmp_path)
    assert np.load(run.embedding_path(5)).shape == (4, 16)
    assert not run.probs_path(5).exists()


def test_cnn_checkpoint_uses_the_pooled_features(tmp_path, image_folder):
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 12], depths=[1, 1], num_labels=2)
    torch.manual_seed(0)
    ResNetForImageClassification(config).save_pretrained(tmp_path / "checkpoint-1")
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(tmp_path / "checkpoint-1")
    assert embed(tmp_path, images=image_folder, quiet=True).steps == [1]
    assert np.load(Run(tmp_path).embedding_path(1)).shape == (10, 12)
    assert np.load(Run(tmp_path).probs_path(1)).shape == (10, 2)


def test_run_recorded_during_training_has_nothing_to_embed(synthetic_run):
    assert embed(synthetic_run, quiet=True).steps == []


@pytest.mark.parametrize("native", [True, False])
def test_precision_choice_on_either_kind_of_cpu(monkeypatch, native):
    """auto = bf16 exactly where bf16 matmuls are native; both answers are checked on any
    machine by setting what torch reports about the CPU (AMX / AVX512-BF16)."""
    cpu = torch.device("cpu")
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: False, raising=False)  # int8: test_precision
    monkeypatch.setattr(models, "_cpu_flags", set)
    for pin in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):  # a pinned ISA overrides the CPU (test_neighbors)
        monkeypatch.delenv(pin, raising=False)
    assert bf16_is_native(cpu) is native
    assert resolve_precision("auto", cpu) is (torch.bfloat16 if native else None)
    assert resolve_precision("fp32", cpu) is None  # explicit choices ignore the hardware
    assert resolve_precision("bf16", cpu) is torch.bfloat16


@pytest.mark.parametrize("native", [True, False])
def test_precision_choice_on_either_kind_of_gpu(monkeypatch, native):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: native)
    cuda = torch.device("cuda")  # a device object only: nothing runs on it
    assert bf16_is_native(cuda) is native
    assert resolve_precision("auto", cuda) is (torch.bfloat16 if native else None)


def test_unknown_precision_and_device():
    with pytest.raises(SpotreviewError) as e:
        resolve_precision("fp8", torch.device("cpu"))
    assert str(e.value) == "unknown precision 'fp8'; expected auto, fp32, bf16, int8"
    with pytest.raises(SpotreviewError) as e:
        resolve_device("tpu")
    assert str(e.value) == "unknown device 'tpu'; expected auto, cpu or cuda"


def test_bf16_embeddings_stay_close_to_fp32(tmp_path, image_folder):
    save_checkpoints(tmp_path, steps=(1,))
    embed(tmp_path, images=image_folder, precision="fp32", quiet=True)
    fp32 = np.load(Run(tmp_path).embedding_path(1))
    Run(tmp_path).embedding_path(1).unlink()
    embed(tmp_path, precision="bf16", quiet=True)
    bf16 = np.load(Run(tmp_path).embedding_path(1))
    assert bf16.dtype == np.float32
    assert np.linalg.norm(bf16 - fp32) / np.linalg.norm(fp32) < 0.03


def test_matmul_attention_gives_the_fused_kernels_outputs():
    import torch.nn.functional as F

    from spotreview.embedding.forward import _matmul_attention, use_matmul_attention

    q, k, v = torch.randn(3, 2, 4, 7, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    module = torch.nn.Module().eval()
    out, _ = _matmul_attention(module, q, k, v, None, scaling=0.3)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=0.3).transpose(1, 2))

    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.bfloat16)
    model = tiny_vit(0).to(torch.bfloat16).eval()
    with torch.inference_mode():
        fused = model(pixel_values=x).logits.float()
        assert use_matmul_attention(model)
        assert model.config._attn_implementation == "spotreview_matmul"
        torch.testing.assert_close(model(pixel_values=x).logits.float(), fused, atol=2e-2, rtol=2e-2)

        causal = tiny_vit(0).to(torch.bfloat16).eval()  # what the matmul form does not cover: the fused kernel
        for module in causal.modules():
            if hasattr(module, "is_causal"):
                module.is_causal = True
        fused = causal(pixel_values=x).logits
        assert use_matmul_attention(causal)
        torch.testing.assert_close(causal(pixel_values=x).logits, fused, atol=0, rtol=0)

        keep = torch.rand(5, 1, 17, 17, generator=torch.Generator().manual_seed(2)) > 0.3  # True = attend
        q, k, v = (t[:, :, :17].to(torch.bfloat16) for t in torch.randn(3, 5, 2, 17, 8, dtype=torch.float64))
        out, _ = _matmul_attention(module, q, k, v, keep, scaling=0.3)  # boolean masks: the fused kernel too
        torch.testing.assert_close(
            out, F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=0.3).transpose(1, 2), atol=0, rtol=0
        )

    assert not use_matmul_attention(tiny_vit(0))  # float32: torch's fused kernel is faster there
    flash = tiny_vit(0).to(torch.bfloat16)
    flash.config._attn_implementation = "flash_attention_2"  # a kernel choice is kept
    assert not use_matmul_attention(flash) and flash.config._attn_implementation == "flash_attention_2"


def test_onednn_linears_give_nn_linears_outputs():
    from spotreview.embedding.forward import use_onednn_linears

    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("oneDNN has no bf16 path on this CPU (or ONEDNN_MAX_CPU_ISA pins it below AVX-512)")
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.bfloat16)
    model = tiny_vit(0).to(torch.bfloat16).eval()
    linears = sum(type(m) is torch.nn.Linear for m in model.modules())
    with torch.inference_mode():
        logits, cls = model(pixel_values=x).logits, model.vit(pixel_values=x).last_hidden_state[:, 0]
        assert use_onednn_linears(model) == linears > 0
        assert not any(type(m) is torch.nn.Linear for m in model.modules())
        torch.testing.assert_close(model(pixel_values=x).logits, logits, atol=2e-2, rtol=2e-2)
        embedded = model.vit(pixel_values=x).last_hidden_state[:, 0]
    assert _cosines(embedded.float().numpy(), cls.float().numpy()).min() > 0.9999

    assert use_onednn_linears(tiny_vit(0)) == 0  # float32: nothing to gain measured, left alone


def test_onednn_linears_that_disagree_with_nn_linear_are_not_used(monkeypatch):
    from spotreview.embedding.forward import _OneDNNLinear, use_onednn_linears

    monkeypatch.setattr(_OneDNNLinear, "forward", lambda self, x: torch.zeros(*x.shape[:-1], self.out_features))
    model = tiny_vit(0).to(torch.bfloat16).eval()
    assert use_onednn_linears(model) == 0
    assert any(type(m) is torch.nn.Linear for m in model.modules())


def test_compiled_models_keep_sdpa_without_a_mask():
    # traced by torch.compile, transformers' "sdpa" got an all-true mask (seen on CUDA), which
    # sends SDPA to its float32 math path; the same function under our name gets none
    from spotreview.embedding.forward import compiled, use_matmul_attention

    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    model = tiny_vit(0).eval()
    with torch.inference_mode():
        expected = model(pixel_values=x).logits
        compiled(model)  # lazy: nothing is compiled until it is called
        assert model.config._attn_implementation == "spotreview_sdpa"
        torch.testing.assert_close(model(pixel_values=x).logits, expected, atol=0, rtol=0)
    matmul = tiny_vit(0).to(torch.bfloat16).eval()
    assert use_matmul_attention(matmul)
    compiled(matmul)  # an attention of ours already: kept
    assert matmul.config._attn_implementation == "spotreview_matmul"


def _cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.slow  # compiles (~15 s on 2 cores with an empty cache)
def test_compiled_models_give_the_eager_vectors_and_cache_in_the_user_cache(tmp_path, image_folder, monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    for root in (eager, compiled):
        save_checkpoints(root, steps=(1, 2))
    # 10 images in batches of 4: the last batch (2) is padded so that one graph serves all
    embed(eager, images=image_folder, precision="fp32", batch_size=4, torch_compile=False, quiet=True)
    embed(compiled, images=image_folder, precision="fp32", batch_size=4, torch_compile=True, quiet=True)
    for step in (1, 2):
        a, b = (np.load(Run(r).embedding_path(step)) for r in (eager, compiled))
        assert _cosines(a, b).min() > 0.9999
        pa, pb = (np.load(Run(r).probs_path(step)) for r in (eager, compiled))
        np.testing.assert_allclose(pb, pa, atol=1e-4)
    assert Run(compiled).read_manifest()["embed"]["compiled"] is True
    assert Run(eager).read_manifest()["embed"]["compiled"] is False
    assert any((tmp_path / "cache" / "spotreview" / "torch-compile").rglob("*"))


@pytest.mark.slow
def test_without_a_compiler_embed_warns_and_runs_eager(tmp_path, image_folder, monkeypatch, caplog):
    import torch._dynamo
    import torch._inductor.config as inductor

    torch._dynamo.reset()  # nothing compiled earlier in this process to reuse
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "cache"))  # empty: nothing compiled to load
    monkeypatch.setattr(inductor.cpp, "cxx", (None, str(tmp_path / "no-such-c++")))
    save_checkpoints(tmp_path / "run", steps=(1,))
    embed(tmp_path / "run", images=image_folder, precision="fp32", batch_size=4, torch_compile=True, quiet=True)
    assert any(
        r.levelname == "WARNING"
        and r.message.startswith("torch.compile failed (")
        and r.message.endswith("); embedding without it")
        for r in caplog.records
    )
    assert Run(tmp_path / "run").read_manifest()["embed"]["compiled"] is False
    assert np.isfinite(np.load(Run(tmp_path / "run").embedding_path(1))).all()


# --- bad input: one line, exit 1, nothing finished deleted ------------------------------------


def run_cli(*args):
    return cli_error(CliRunner().invoke(cli, ["embed", *map(str, args), "-q"]))


def test_missing_and_empty_run_directories(tmp_path):
    assert run_cli(tmp_path / "nope") == (
        f"Error: run directory {tmp_path / 'nope'} does not exist; "
        f"create one with `spotreview finetune --out {tmp_path / 'nope'}`"
    )
    (tmp_path / "empty").mkdir()
    assert run_cli(tmp_path / "empty") == (
        f"Error: run directory {tmp_path / 'empty'} is empty; create a run with "
        f"`spotreview finetune --out {tmp_path / 'empty'}` or put checkpoint-STEP directories in it"
    )
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    assert run_cli(tmp_path / "other") == (
        f"Error: {tmp_path / 'other'} has no checkpoint-STEP directories and no embeddings; expected a run "
        "made by `spotreview finetune` or a folder of Trainer checkpoints"
    )


def test_folder_without_eval_set_needs_images(tmp_path, image_folder):
    save_checkpoints(tmp_path, steps=(1,))
    assert run_cli(tmp_path) == (
        f"Error: {tmp_path} has no eval.csv; give the images to embed: "
        f"`spotreview embed {tmp_path} --dataset NAME` or `--images DIR`"
    )
    assert run_cli(tmp_path, "--images", image_folder, "--dataset", "digits") == (
        "Error: give either --dataset or --images, not both"
    )
    assert run_cli(tmp_path, "--images", tmp_path / "nope") == (
        f"Error: images folder {tmp_path / 'nope'} does not exist; "
        "expected a folder of images (one sub-folder per class)"
    )
    assert not (tmp_path / "eval.csv").exists() and not (tmp_path / "images").exists()  # nothing left over
    embed(tmp_path, images=image_folder, quiet=True)
    fix = "give the run's own images, or start a new run (overwrite=True / --overwrite, or another folder)"
    for other, given in ((["--dataset", "digits"], 359), (["--eval-size", "3"], 3)):
        assert run_cli(tmp_path, *other) == (
            f"Error: {tmp_path} holds another evaluation set (eval.csv): {given} images given, eval.csv has 10; {fix}"
        )
    assert embed(tmp_path, images=image_folder, quiet=True).steps == []  # the same images again: fine


def test_another_eval_set_is_refused_by_first_difference_unless_overwrite(tmp_path, image_folder):
    """Same count, other labels or pixels: refused, naming the first row that differs."""
    import shutil

    save_checkpoints(tmp_path, steps=(1,))
    embed(tmp_path, images=image_folder, quiet=True)
    first = np.load(tmp_path / "embeddings" / "step-1.npy")
    other = tmp_path.parent / f"{tmp_path.name}-other"
    shutil.copytree(image_folder, other)
    (other / "light" / "00.png").rename(other / "dark" / "00.png")  # one image changes class
    fix = "give the run's own images, or start a new run (overwrite=True / --overwrite, or another folder)"
    message = run_cli(tmp_path, "--images", other)
    assert message.startswith(f"Error: {tmp_path} holds another evaluation set (eval.csv): the label of row ")
    assert message.endswith(f"is 0, eval.csv has 1; {fix}")
    shutil.rmtree(other)
    shutil.copytree(image_folder, other)
    with Image.open(other / "light" / "00.png") as im:
        im.rotate(90).save(other / "light" / "00.png")  # same ids and labels, other pixels
    message = run_cli(tmp_path, "--images", other)
    assert message.startswith(f"Error: {tmp_path} holds another evaluation set (eval.csv): image ")
    assert message.endswith(fix) and "differs from images/" in message
    np.testing.assert_array_equal(np.load(tmp_path / "embeddings" / "step-1.npy"), first)  # nothing lost
    result = CliRunner().invoke(cli, ["embed", str(tmp_path), "--images", str(other), "--overwrite", "-q"])
    assert result.exit_code == 0, result.output
    assert not np.array_equal(np.load(tmp_path / "embeddings" / "step-1.npy"), first)  # a new run


def test_checkpoint_without_weights(tmp_path, image_folder):
    save_checkpoints(tmp_path, steps=(1, 2))
    (tmp_path / "checkpoint-2" / "model.safetensors").unlink()
    assert run_cli(tmp_path, "--images", image_folder) == (
        f"Error: {tmp_path / 'checkpoint-2'} has no weights (model.safetensors or pytorch_model.bin); "
        "save the model there again, or move the directory out of the run"
    )
    # the snapshot before it is finished and kept; the bad checkpoint is left as it was
    assert Run(tmp_path).snapshots() == [1]
    assert (tmp_path / "checkpoint-2" / "config.json").is_file()


def test_checkpoint_with_corrupt_weights(tmp_path, image_folder):
    save_checkpoints(tmp_path, steps=(1, 2))
    weights = tmp_path / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    message = run_cli(tmp_path, "--images", image_folder)
    assert message.startswith(f"Error: could not load the weights in {tmp_path / 'checkpoint-2'} (")
    assert message.endswith(
        "): the file is truncated or corrupt; save the model there again, or move the directory out of the run"
    )
    assert "\n" not in message
    assert Run(tmp_path).snapshots() == [1] and weights.stat().st_size == 100


def test_checkpoint_that_is_not_an_image_model(tmp_path, image_folder):
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    ).save_pretrained(tmp_path / "checkpoint-3")
    vit_processor().save_pretrained(tmp_path / "processor")
    assert run_cli(tmp_path, "--images", image_folder) == (
        f"Error: {tmp_path / 'checkpoint-3'} is a bert model that reads input_ids, not images; "
        "expected an image model (e.g. a ViTForImageClassification checkpoint)"
    )
    with pytest.raises(ModelError):
        load_checkpoint(tmp_path / "checkpoint-3")


def test_no_processor_anywhere(tmp_path, image_folder):
    save_checkpoints(tmp_path, steps=(1,), processor_in="nowhere")
    assert run_cli(tmp_path, "--images", image_folder) == (
        f"Error: no image processor: neither {tmp_path / 'processor'} nor {tmp_path / 'checkpoint-1'} has "
        f"preprocessor_config.json; save one there with processor.save_pretrained('{tmp_path / 'processor'}')"
    )


def test_asking_for_a_step_that_has_no_checkpoint(tmp_path):
    save_checkpoints(tmp_path, steps=(1,))
    with pytest.raises(RunDirError, match=r"has no checkpoint-7; it has steps \[1\]$"):
        embed(tmp_path, checkpoints=[7], quiet=True)


def test_probabilities_follow_the_class_names_of_the_checkpoint(tmp_path, image_folder, caplog):
    """A checkpoint whose head and id2label are permuted together is the same model: same probabilities."""
    save_checkpoints(tmp_path, steps=(1,))
    swapped = tiny_vit(0, num_labels=2)
    head = swapped.classifier
    with torch.no_grad():
        head.weight.copy_(head.weight.flip(0))
        head.bias.copy_(head.bias.flip(0))
    named(swapped, ("light", "dark")).save_pretrained(tmp_path / "checkpoint-2")
    vit_processor().save_pretrained(tmp_path / "checkpoint-2")
    assert embed(tmp_path, images=image_folder, quiet=True).steps == [1, 2]
    run = Run(tmp_path)
    np.testing.assert_allclose(np.load(run.probs_path(2)), np.load(run.probs_path(1)), atol=1e-6)

    named(tiny_vit(0, num_labels=2), ("cat", "dark")).save_pretrained(tmp_path / "checkpoint-3")  # no processor
    assert run_cli(tmp_path, "--processor", tmp_path / "nope").startswith(
        f"Error: --processor {tmp_path / 'nope'} is not an image processor ("
    )
    assert run_cli(tmp_path, "--processor", tmp_path / "checkpoint-1") == (
        f"Error: the class names of {tmp_path / 'checkpoint-3'} do not match the run's: the model lacks "
        "['light'] and has ['cat'] the dataset lacks; embed the dataset that model was trained on"
    )
    assert not run.embedding_path(3).exists()

    tiny_vit(0, num_labels=2).save_pretrained(tmp_path / "checkpoint-4")  # LABEL_0, LABEL_1: no names
    with caplog.at_level("WARNING", logger="spotreview"):
        assert embed(tmp_path, checkpoints=[4], processor=tmp_path / "checkpoint-1", quiet=True).steps == [4]
    assert "has no class names (id2label: LABEL_0, ...); its outputs are taken in the dataset's class order" in (
        caplog.text
    )


def test_base_model_is_embedded_as_step_0(tmp_path, image_folder):
    save_checkpoints(tmp_path, steps=(5,))
    named(tiny_vit(7, num_labels=2)).save_pretrained(tmp_path.parent / "base")
    assert run_cli(tmp_path, "--images", image_folder, "--base-model", tmp_path / "nope").startswith(
        f"Error: --base-model {tmp_path / 'nope'} is not a model directory and the hub is unreachable ("
    )
    assert not (tmp_path / "eval.csv").exists()  # a failed embed leaves nothing behind
    assert embed(tmp_path, images=image_folder, base_model=tmp_path.parent / "base", quiet=True).steps == [0, 5]
    import pandas as pd

    assert pd.read_csv(Run(tmp_path).snapshots_csv)["step"].tolist() == [0, 5]
    assert Run(tmp_path).read_manifest()["embed"]["base_model"] == str(tmp_path.parent / "base")


@pytest.mark.slow
def test_embed_under_torchrun_splits_the_checkpoints(tmp_path, image_folder):
    """`torchrun --nproc_per_node 2 -m spotreview embed`: every checkpoint embedded once, as in one process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    save_checkpoints(tmp_path / "two", steps=(1, 2, 3))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "-m",
            "spotreview",
            "embed",
            str(tmp_path / "two"),
            "--images",
            str(image_folder),
            "--precision",
            "fp32",
            "-q",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    save_checkpoints(tmp_path / "one", steps=(1, 2, 3))
    assert embed(tmp_path / "one", images=image_folder, precision="fp32", quiet=True).steps == [1, 2, 3]
    two, one = Run(tmp_path / "two"), Run(tmp_path / "one")
    assert two.snapshots() == [1, 2, 3] and two.eval_csv.read_bytes() == one.eval_csv.read_bytes()
    for step in (1, 2, 3):
        np.testing.assert_allclose(np.load(two.embedding_path(step)), np.load(one.embedding_path(step)), atol=1e-5)
