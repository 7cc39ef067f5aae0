"""Image sources: digits, save_to_disk directories and image folders through one code path."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from spotreview.embedding.sources import load_images
from spotreview.errors import DataError
from spotreview.rundir.evalset import to_rgb

CLASSES = ("ant", "bee", "cow")


def tiny_images(n_per_class: int, seed: int) -> list[tuple[Image.Image, int]]:
    """Seeded 6x6 RGB images, class-major order, one colour per class plus noise."""
    rng = np.random.default_rng(seed)
    out = []
    for label in range(len(CLASSES)):
        for _ in range(n_per_class):
            base = np.zeros((6, 6, 3)) + 80 * label
            pixels = np.clip(base + rng.integers(0, 60, (6, 6, 3)), 0, 255).astype(np.uint8)
            out.append((Image.fromarray(pixels), label))
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The same tiny train/test data as a save_to_disk directory and as an image folder."""
    import datasets

    root = tmp_path_factory.mktemp("sources")
    splits = {"train": tiny_images(8, 0), "test": tiny_images(4, 1)}
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES))})
    datasets.DatasetDict(
        {
            name: datasets.Dataset.from_dict(
                {"img": [im for im, _ in rows], "label": [k for _, k in rows]}, features=features
            )
            for name, rows in splits.items()
        }
    ).save_to_disk(str(root / "disk"))
    for name, rows in splits.items():
        for i, (im, k) in enumerate(rows):
            folder = root / "folder" / name / CLASSES[k]
            folder.mkdir(parents=True, exist_ok=True)
            im.save(folder / f"{i:03d}.png")
    return root


def test_digits_default_is_offline_split_and_rgb():
    s = load_images()
    assert len(s.train_labels) + len(s.eval_labels) == 1797
    assert len(s.eval_ids) == 359 and s.class_names == [str(d) for d in range(10)]
    assert s.eval_images[0].mode == "RGB" and s.eval_images[0].size == (32, 32)
    assert np.bincount(s.eval_labels).min() >= 35  # stratified: every digit ~36 times
    assert s.eval_ids[:2] == ["digits-00021", "digits-00024"]  # stable: the row in sklearn's digits
    again = load_images()
    assert again.eval_ids == s.eval_ids and np.array_equal(again.train_labels, s.train_labels)

    sub = load_images(eval_size=30, seed=0)
    assert len(sub.eval_ids) == 30 and np.bincount(sub.eval_labels).tolist() == [3] * 10
    assert set(sub.eval_ids) <= set(s.eval_ids)
    assert load_images(eval_size=30, seed=1).eval_ids != sub.eval_ids


def test_save_to_disk_and_image_folder_load_through_the_same_code(sources):
    disk = load_images(str(sources / "disk"), quiet=True)
    folder = load_images(str(sources / "folder"), quiet=True)
    for s in (disk, folder):
        assert s.class_names == list(CLASSES)
        assert s.eval_split == "test"
        assert s.eval_ids == [f"test-{i:05d}" for i in range(12)]
        assert s.eval_labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
        assert len(s.train_images) == 24 and s.train_labels.dtype == np.int64
    # same pixels either way: the column detection and splitting are shared
    for a, b in zip(disk.eval_images, folder.eval_images):
        assert np.array_equal(np.asarray(a), np.asarray(b)) and a.mode == "RGB"

    sub = load_images(str(sources / "disk"), eval_size=6, seed=3, quiet=True)
    assert np.bincount(sub.eval_labels).tolist() == [2, 2, 2]


def test_train_only_dataset_gets_a_seeded_stratified_split(tmp_path):
    import datasets

    rows = tiny_images(10, 2)
    ds = datasets.Dataset.from_dict(
        {"image": [im for im, _ in rows], "label": [CLASSES[k] for _, k in rows]},  # plain strings, no ClassLabel
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")}),
    )
    ds.save_to_disk(str(tmp_path / "d"))
    s = load_images(str(tmp_path / "d"), seed=0, quiet=True)
    assert s.class_names == list(CLASSES) and s.eval_split == "train"
    assert len(s.eval_ids) == 6 and np.bincount(s.eval_labels).tolist() == [2, 2, 2]
    assert all(i.startswith("train-") for i in s.eval_ids)
    assert len(s.train_labels) == 24
    assert load_images(str(tmp_path / "d"), seed=0, quiet=True).eval_ids == s.eval_ids
    assert load_images(str(tmp_path / "d"), seed=1, quiet=True).eval_ids != s.eval_ids
    sized = load_images(str(tmp_path / "d"), eval_size=12, seed=0, quiet=True)  # carved to --eval-size
    assert len(sized.eval_ids) == 12 and len(sized.train_labels) == 18
    assert np.bincount(sized.eval_labels).tolist() == [4, 4, 4]
    with pytest.raises(DataError) as e:
        load_images(str(tmp_path / "d"), eval_size=30, quiet=True)
    assert str(e.value) == (
        f"eval size 30 leaves no training images: '{tmp_path / 'd'}' has 30 images and no evaluation split; "
        "use --eval-size 29 or less"
    )


def test_mixed_modes_and_sizes_become_rgb(tmp_path):
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (9, 7), dtype=np.uint8), mode="L"),
        Image.fromarray(rng.integers(0, 255, (5, 5, 4), dtype=np.uint8), mode="RGBA"),
        Image.fromarray(rng.integers(0, 255, (12, 4, 3), dtype=np.uint8)).convert("P"),
        Image.fromarray(rng.integers(0, 60000, (6, 6)).astype(np.uint16)),  # 16-bit grey
        Image.fromarray(rng.random((8, 8)) > 0.5),  # 1-bit
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).convert("CMYK"),
    ]
    for im in images:
        rgb = to_rgb(im)
        assert rgb.mode == "RGB" and rgb.size == im.size
    wide = to_rgb(images[3])
    assert np.asarray(wide).max() == 255  # rescaled, not clipped to white

    for k, im in enumerate(images):
        folder = tmp_path / "mixed" / ("odd" if k % 2 else "even")
        folder.mkdir(parents=True, exist_ok=True)
        im.save(folder / f"{k}.{'jpg' if im.mode == 'CMYK' else 'png'}")
    s = load_images(str(tmp_path / "mixed"), all_eval=True, quiet=True)
    assert len(s.eval_ids) == 6 and s.class_names == ["even", "odd"]
    assert {im.mode for im in s.eval_images} == {"RGB"}


def test_no_label_column_names_the_columns(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"picture": [im for im, _ in tiny_images(2, 0)], "note": ["x"] * 6})
    ds = ds.cast_column("picture", datasets.Image())
    ds.save_to_disk(str(tmp_path / "nolabels"))
    with pytest.raises(DataError) as e:
        load_images(str(tmp_path / "nolabels"), quiet=True)
    assert str(e.value) == (
        f"dataset '{tmp_path / 'nolabels'}' has no label column (columns: picture, note); expected a "
        "ClassLabel column or one named 'label' or 'labels' (an image folder needs one sub-folder per class)"
    )
    # embedding a folder of unlabelled images is fine: one class
    assert load_images(str(tmp_path / "nolabels"), all_eval=True, quiet=True).class_names == ["unlabeled"]


def test_no_image_column(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"x": [1, 2], "label": [0, 1]}).save_to_disk(str(tmp_path / "tab"))
    with pytest.raises(DataError) as e:
        load_images(str(tmp_path / "tab"), quiet=True)
    assert str(e.value) == (
        f"dataset '{tmp_path / 'tab'}' has no image column (columns: x, label); "
        "expected a column with the datasets Image feature"
    )


def test_eval_size_larger_than_the_data(sources):
    with pytest.raises(DataError) as e:
        load_images(eval_size=5000)
    assert str(e.value) == (
        "eval size 5000 is larger than the evaluation data (359 images in digits); use --eval-size 359 or less"
    )
    with pytest.raises(DataError) as e:
        load_images(str(sources / "disk"), eval_size=13, quiet=True)
    assert str(e.value) == (
        f"eval size 13 is larger than the evaluation data (12 images in split 'test' of "
        f"'{sources / 'disk'}'); use --eval-size 12 or less"
    )
    with pytest.raises(DataError, match="^eval size must be at least 1, got 0$"):
        load_images(eval_size=0)


def _cli(args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_OFFLINE")}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "spotreview", *args], capture_output=True, text=True, env={**clean, **env}, timeout=60
    )
    return done, time.perf_counter() - started


def test_unknown_dataset_fails_fast_offline(tmp_path):
    """HF_HUB_OFFLINE set: one line from the command within seconds, nothing created."""
    out = tmp_path / "run"
    done, seconds = _cli(["finetune", "--out", str(out), "--dataset", "nobody/no-such-dataset"], HF_HUB_OFFLINE="1")
    assert done.returncode == 1 and seconds < 30
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: dataset 'nobody/no-such-dataset' is not a local directory and could not be loaded from the hub "
        "(HF_HUB_OFFLINE is set and it is not in the local cache): give a save_to_disk directory or an image folder"
    )
    assert "Traceback" not in done.stderr and not out.exists()


def test_unreachable_hub_fails_fast_without_retries(monkeypatch):
    """No network and no offline flag: a reachability probe answers instead of ~25 s of retries."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    started = time.perf_counter()
    with pytest.raises(DataError) as e:
        load_images("nobody/no-such-dataset")
    assert time.perf_counter() - started < 5
    assert str(e.value) == (
        "dataset 'nobody/no-such-dataset' is not a local directory and could not be loaded from the hub "
        "(127.0.0.1 cannot be reached; set HF_HUB_OFFLINE=1 to use the local cache): "
        "give a save_to_disk directory or an image folder"
    )
