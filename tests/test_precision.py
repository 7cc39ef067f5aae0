"""What ``--precision int8`` changes, on the two kinds of model it is meant for (the model-level
checks are slow: they train the demo's model and run a ViT-base; ``make test`` runs them).

int8 may be chosen by ``auto`` only where it is proven: per-image cosine >= 0.99 against fp32
on the demo's small ViT trained on digits and on a ViT-base-sized model, the same top-8
outliers at the last snapshot, and the overlap of cleanlab's label-issue sets reported and
bounded. The int8 products are exact integer arithmetic, so what differs between CPU classes is
only the float32 rounding around them (layer norms, GELU, attention): far below these bounds.
"""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest
import torch

from spotreview import analyze, embed, finetune
from spotreview.embedding.forward import forward, preprocess
from spotreview.embedding.models import precision_used, resolve_precision
from spotreview.embedding.quantize import Int8Linear, fbgemm_available, int_mm_is_exact, quantize_linears
from spotreview.errors import SpotreviewError
from spotreview.reviewing.table import build_table
from spotreview.rundir.evalset import read_eval_images
from spotreview.rundir.run import Run
from spotreview.training.recorder import EmbeddingRecorder

MIN_COSINE = 0.99  # per image, int8 against fp32 (issue 23)
TOP_K = 8


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity of two ``(n, dim)`` arrays, in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def embed_both(model, pixels):
    """``(fp32, int8)`` outputs of :func:`forward` for ``model`` (left as it is) over ``pixels``."""
    cpu = torch.device("cpu")
    fp32 = forward(model, pixels, device=cpu, batch_size=16, quiet=True)
    quantized = copy.deepcopy(model)
    assert quantize_linears(quantized) > 0
    return fp32, forward(quantized, pixels, device=cpu, batch_size=16, quiet=True)


# --- which precision auto picks ------------------------------------------------------------


@pytest.mark.parametrize(
    ("bf16", "vnni", "pin", "expected"),
    [
        (True, True, None, "bf16"),  # AMX / AVX512-BF16
        (False, True, None, "int8"),  # AVX-512 with VNNI, no bf16
        (True, True, "AVX512_CORE_VNNI", "int8"),  # that class reproduced on a bf16 CPU
        (True, True, "AVX2", "fp32"),  # AVX2 only, reproduced
        (False, True, "AVX512_CORE", "fp32"),  # AVX-512 without VNNI
        (False, False, None, "fp32"),  # AVX2 only
    ],
)
def test_auto_precision_by_cpu_class(monkeypatch, bf16, vnni, pin, expected):
    """Every CPU class checked on any machine, by setting what torch reports about the CPU."""
    from spotreview.embedding import models

    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: vnni, raising=False)
    monkeypatch.setattr(models, "_cpu_flags", set)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if pin is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", pin)
    cpu = torch.device("cpu")
    assert precision_used("auto", cpu) == expected
    assert precision_used("auto", cpu, int8=False) == ("fp32" if expected == "int8" else expected)  # the recorder
    assert resolve_precision("auto", cpu) is (torch.bfloat16 if expected == "bf16" else None)
    assert precision_used("int8", cpu) == "int8"  # asked for: on any CPU


def test_int8_refused_where_it_does_not_run():
    with pytest.raises(SpotreviewError, match="int8 runs on the CPU only"):
        precision_used("int8", torch.device("cuda"))
    with pytest.raises(SpotreviewError, match="int8 is for `spotreview embed` only"):
        EmbeddingRecorder("unused", pixel_values=torch.zeros(2, 3, 8, 8), precision="int8")


# --- one layer --------------------------------------------------------------------------


@pytest.mark.parametrize("fbgemm", [True, False])
def test_int8_linear_matches_float_within_quantization_error(fbgemm):
    """Both kernels; an all-zero row gives the bias exactly. With per-row scales (``_int_mm``)
    a row 100x larger than the others (an outlier token) leaves the others' precision alone."""
    if fbgemm and not fbgemm_available():
        pytest.skip("this torch has no fbgemm")
    if not fbgemm and not int_mm_is_exact():  # AVX2 without VNNI: refused (the next test)
        pytest.skip("torch._int_mm is not exact on this CPU")
    gen = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    x = torch.randn(2, 20, 64, generator=gen)
    if not fbgemm:
        x[0, 3] *= 100
    x[1, 7] = 0
    with torch.inference_mode():
        want, got = linear(x), Int8Linear(linear, fbgemm=fbgemm)(x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    cos = torch.nn.functional.cosine_similarity(got.reshape(-1, 48), want.reshape(-1, 48))
    assert float(cos.min()) >= 0.999  # 7-bit mantissas on both sides: error ~1 % per product, averaged
    torch.testing.assert_close(got[1, 7], linear.bias.detach(), rtol=0, atol=1e-6)


def test_the_int_mm_kernel_is_refused_where_it_is_not_exact():
    """The fallback kernel only where torch._int_mm is exact (not on AVX2 without VNNI)."""
    model = torch.nn.Sequential(torch.nn.Linear(16, 32))
    if int_mm_is_exact():
        assert quantize_linears(model, fbgemm=False) == 1
    else:
        with pytest.raises(SpotreviewError, match="needs fbgemm"):
            quantize_linears(model, fbgemm=False)


def test_layers_that_do_not_fit_stay_float32():
    """A 10-class head (10 outputs, not a multiple of 8) keeps its float32 weights."""
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 10))
    assert quantize_linears(model) == 1
    assert isinstance(model[0], Int8Linear) and type(model[2]) is torch.nn.Linear


# --- the demo's model, trained briefly on digits ------------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The demo's small ViT trained for 3 epochs on digits, checkpoints kept,
    analysed with its last snapshot embedded post hoc in fp32 and, in a copy, in int8."""
    root = tmp_path_factory.mktemp("precision")
    run = finetune(
        root / "fp32", epochs=3, batch_size=64, save_steps=23, learning_rate=3e-3, keep_checkpoints=True, quiet=True
    ).run
    last = run.snapshots()[-1]
    for path in (run.embedding_path(last), run.probs_path(last)):
        path.unlink()  # recorded while training (bf16 on a bf16 CPU): embedded again below
    copy_root = root / "int8"
    shutil.copytree(run.root, copy_root)
    runs = {}
    for precision, where in (("fp32", run.root), ("int8", copy_root)):
        done = embed(where, checkpoints=[last], precision=precision, quiet=True)
        assert done.steps == [last] and done.precision == precision
        analyze(where, quiet=True)
        runs[precision] = Run(where)
    return runs


@pytest.mark.slow  # the run trains for ~1 min on 2 cores; the ViT-base forward ~40 s
def test_int8_embeddings_of_the_demo_model_keep_their_direction(digits_run):
    run = digits_run["fp32"]
    last = run.snapshots()[-1]
    cos = cosines(np.load(run.embedding_path(last)), np.load(digits_run["int8"].embedding_path(last)))
    assert cos.min() >= MIN_COSINE, cos.min()
    probs = [np.load(r.probs_path(last)) for r in digits_run.values()]
    assert np.abs(probs[0] - probs[1]).max() < 0.1  # the head itself stays float32
    assert (probs[0].argmax(1) != probs[1].argmax(1)).mean() <= 0.01  # predictions: at most 1 % change


@pytest.mark.slow
def test_int8_keeps_the_top_outliers_and_the_label_issues(digits_run):
    """The same top-8 outliers at the last snapshot; cleanlab's label issues (the "likely
    mislabelled" group) overlap by at least 0.8 (Jaccard). Those are thresholded on the predicted
    probability of the label, so images at the threshold may cross it when the probabilities move
    by the <= 1e-2 that int8 moves them; an image well inside either side cannot."""
    from spotreview.analysis.store import load_analysis

    analyses = {p: load_analysis(r) for p, r in digits_run.items()}
    top = {p: set(a.ids[i] for i in a.top(len(a.steps) - 1, TOP_K)) for p, a in analyses.items()}
    assert top["fp32"] == top["int8"]
    issues = {}
    for precision, run in digits_run.items():
        df = build_table(run, save=False)
        issues[precision] = set(df.loc[df["is_label_issue_last"], "id"])
    both, either = issues["fp32"] & issues["int8"], issues["fp32"] | issues["int8"]
    overlap = len(both) / max(1, len(either))
    print(f"\nlabel issues: fp32 {len(issues['fp32'])}, int8 {len(issues['int8'])}, Jaccard {overlap:.2f}")
    assert overlap >= 0.8, (issues, overlap)


@pytest.mark.slow
def test_a_run_embedded_in_int8_says_so(digits_run):
    from spotreview.cli.format import format_status
    from spotreview.reviewing.status import run_status

    run = digits_run["int8"]
    assert run.read_manifest()["embed"]["precision"] == "int8"
    status = run_status(run)
    assert status.precision == {
        "recorded while training": status.precision["recorded while training"],
        "spotreview embed": "int8",
    }
    assert "int8 (spotreview embed)" in format_status(status)


# --- a ViT-base-sized model ---------------------------------------------------------------


@pytest.mark.slow
def test_int8_embeddings_of_a_vit_base_sized_model_keep_their_direction(digits_run):
    """ViTConfig's defaults (ViT-B/16, 224 px, 86M parameters), random init (no pretrained weights
    offline): its activations lack the outlier channels of trained ViTs, which the per-row scales
    are there for (see test_int8_linear_matches_float_within_quantization_error). Real images:
    the digits, upscaled."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(num_labels=10)).eval()
    processor = ViTImageProcessor(size={"height": 224, "width": 224})
    images = read_eval_images(digits_run["fp32"])[:24]
    (emb32, probs32), (emb8, probs8) = embed_both(model, preprocess(images, processor, quiet=True))
    cos = cosines(emb32, emb8)
    assert cos.min() >= MIN_COSINE, cos.min()
    assert np.abs(probs32 - probs8).max() < 0.05
