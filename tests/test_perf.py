"""The fast embed path: tensor preprocessing equals the processor's, bf16 weights give the
vectors bf16 autocast gives (in training), the GPU benchmark path needs no datasets, and the
CLI sets OPENBLAS_THREAD_TIMEOUT before numpy loads. What that setting and keep_freed_memory
save depends on the machine: ``python -m benchmarks process`` measures it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from conftest import tiny_vit, vit_processor
from PIL import Image

from spotreview.embedding import pixels
from spotreview.embedding.forward import forward, preprocess, use_matmul_attention

ROOT = Path(__file__).resolve().parents[1]
PIL_PROCESSOR = getattr(transformers, "ViTImageProcessorPil", transformers.ViTImageProcessor)


def _images(sizes, seed=0):
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    images[1] = images[1].convert("L")  # modes other than RGB go through to_rgb first
    return images


@pytest.mark.parametrize("size", [16, 224])
def test_tensor_preprocessing_equals_the_processor_to_one_level(size):
    # up- and down-sampling, several source sizes in one batch (grouped by size)
    images = _images([(32, 32), (32, 32), (40, 30), (300, 260), (32, 32), (7, 9)])
    processor = PIL_PROCESSOR(
        size={"height": size, "width": size}, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.3, 0.25]
    )
    assert pixels.plan(processor) is not None
    expected = processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
    got = preprocess(images, processor, batch_size=4, quiet=True)
    assert got.shape == expected.shape and got.dtype == torch.float32
    levels = (got - expected).abs() * torch.tensor([0.2, 0.3, 0.25]).view(1, 3, 1, 1) * 255
    assert levels.max() <= 1.0 + 1e-4  # PIL and torch round a resized uint8 pixel differently at most by 1
    assert levels.mean() < 0.05


def test_processors_that_do_more_go_through_the_processor_itself():
    images = _images([(40, 30), (20, 15)])  # one aspect ratio: shortest-edge resizes agree in shape
    for processor in (
        PIL_PROCESSOR(size={"height": 16, "width": 16}, resample=3),  # bicubic: torch's differs from PIL's
        PIL_PROCESSOR(size={"shortest_edge": 16}),
    ):
        assert pixels.plan(processor) is None
        expected = processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        assert torch.equal(preprocess(images, processor, quiet=True), expected)


def test_bf16_weights_give_the_vectors_of_bf16_autocast_within_1e_2_cosine():
    """Post hoc (bf16 weights: layer norms, GELU, softmax in bf16; on a CPU the matmul
    attention) against in training (fp32 weights under bf16 autocast, what EmbeddingRecorder
    runs): the same vectors to 1e-2."""
    model = tiny_vit(3, intermediate_size=64).eval()
    pix = preprocess(_images([(24, 24)] * 40, seed=1), vit_processor(), dtype=torch.bfloat16, quiet=True)
    cpu = torch.device("cpu")
    in_training, probs_a = forward(model, pix, device=cpu, autocast=torch.bfloat16, batch_size=16, quiet=True)
    model = model.to(torch.bfloat16)
    assert use_matmul_attention(model)
    post_hoc, probs_b = forward(model, pix, device=cpu, batch_size=16, quiet=True)
    assert in_training.dtype == post_hoc.dtype == np.float32 and in_training.shape == (40, 16)
    cosine = (in_training * post_hoc).sum(1) / np.linalg.norm(in_training, axis=1) / np.linalg.norm(post_hoc, axis=1)
    assert cosine.min() >= 1 - 1e-2
    assert np.abs(probs_a - probs_b).max() < 2e-2


BLOCKED = """
import sys
for name in ("datasets", "cleanlab", "renumics", "pandas", "pyarrow", "sklearn"):
    sys.modules[name] = None  # importing any of them now raises ImportError
from benchmarks.bench_embed import throughput
rows = throughput("cpu", 4, n_snapshots=1, batch_size=2, config=dict(image_size=32, hidden_size=32,
                  num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
assert rows[0]["value"] > 0 and "tensor ops" in rows[0]["note"], rows
print("ok")
"""


def test_the_gpu_benchmark_path_imports_no_datasets_cleanlab_or_spotlight():
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


def test_the_cli_tells_blas_threads_to_sleep_before_numpy_loads():
    code = (
        "import os, sys\nfrom spotreview.cli import main\nsys.argv = ['spotreview', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nprint(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    )
    for given, expected in ((None, "4"), ("9", "9")):  # a user's own setting stays
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
        env.update({} if given is None else {"OPENBLAS_THREAD_TIMEOUT": given})
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
        )
        assert out.stdout.split()[-1] == expected, out.stderr[-2000:]
