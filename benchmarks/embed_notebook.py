"""The notebook way of embedding, and `spotreview embed` against it in pairs: the ViT-base
checkpoints and image folder both embed (bench_embed and bench_classes use them)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from .bench_postprocess import _wall
from .paired import Paired, paired


def _vit_base_checkpoints(root: Path, n_snapshots: int, image_size: int):
    """`checkpoint-STEP` dirs of a ViT-base-sized classifier (86M params) + its processor."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(image_size=image_size, patch_size=16, num_labels=10)  # ViT-base sizes
    processor = ViTImageProcessor(size={"height": image_size, "width": image_size})
    for step in range(n_snapshots):
        torch.manual_seed(step)
        model = ViTForImageClassification(config)
        path = root / f"checkpoint-{step}"
        model.save_pretrained(path)
        processor.save_pretrained(path)
    return config, processor


def _image_folder(root: Path, n_images: int, seed: int = 0) -> Path:
    """CIFAR-like 32x32 RGB PNGs in one sub-folder per class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n_images):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")
    return root


NOTEBOOK = r"""
import sys
from pathlib import Path
import numpy as np, torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel
from transformers.utils import logging

logging.set_verbosity_error()  # "newly initialized pooler" notes: expected, not news
run, folder = Path(sys.argv[1]), Path(sys.argv[2])
images = [Image.open(p).convert("RGB") for p in sorted(folder.rglob("*.png"))]
for path in sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
    processor = AutoImageProcessor.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    vectors = []
    with torch.no_grad():
        for start in range(0, len(images), 24):
            inputs = processor(images=images[start : start + 24], return_tensors="pt")
            vectors.append(model(**inputs).last_hidden_state[:, 0].numpy())
    np.save(run / f"notebook-{path.name}.npy", np.concatenate(vectors))
"""


def _embedded_precision(run_dir: Path) -> str:
    """The precision `spotreview embed` recorded in the run's manifest ("?" without one)."""
    import json

    try:
        return json.loads((run_dir / "manifest.json").read_text())["embed"]["precision"]
    except (OSError, KeyError, ValueError):
        return "?"


def versus_notebook(n_images: int, n_snapshots: int, pairs: int) -> tuple[Paired, str]:
    """Seconds of `spotreview embed` (default options, not compiled) against the notebook way,
    whole processes, on ``n_images`` images x ``n_snapshots`` ViT-base checkpoints, in
    ``pairs`` alternating pairs; and the precision `spotreview embed` chose."""
    cli = [sys.executable, "-m", "spotreview", "embed"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_dir = tmp / "run"
        _vit_base_checkpoints(run_dir, n_snapshots, 224)
        folder = _image_folder(tmp / "images", n_images)

        def ours() -> float:
            shutil.rmtree(run_dir / "embeddings", ignore_errors=True)  # embed every snapshot again
            return _wall(cli + [str(run_dir), "--images", str(folder), "-q"])

        def notebook() -> float:
            return _wall([sys.executable, "-c", NOTEBOOK, str(run_dir), str(folder)])

        result = paired(ours, notebook, pairs)
        return result, _embedded_precision(run_dir)
