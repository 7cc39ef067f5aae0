"""Image sources -> training images, evaluation images, labels and class names.

Sources (``dataset`` argument of :func:`load_images`):

* ``"digits"``: scikit-learn's bundled 8x8 digits (1797 images, no download), upscaled to
  32x32 RGB, split 80/20 stratified and seeded.
* a ``datasets.save_to_disk`` directory (``load_from_disk``),
* an image folder with one sub-folder per class (``load_dataset("imagefolder")``),
* a Hugging Face hub dataset name (``load_dataset(name)``), e.g. ``cifar10``.

The last three go through the same code once loaded (:func:`_from_datasets`): the image
column is found by its ``Image`` feature, the label column by its ``ClassLabel`` feature or
the name ``label``/``labels``; the evaluation split is ``test``, else ``validation``, else a
seeded stratified part of ``train``: ``eval_size`` images, or 20 % without one. Every image
is converted to RGB; sizes may differ (the model's image processor resizes).

Evaluation ids are ``SPLIT-INDEX`` with INDEX the row in the source split (``test-00042``),
so they stay the same for the same dataset whatever ``eval_size`` and seed pick.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from spotreview.defaults import DATASET, SEED
from spotreview.errors import DataError, first_line
from spotreview.rundir.evalset import to_rgb

EVAL_SPLITS = ("test", "validation", "valid", "val")
LABEL_NAMES = ("label", "labels")
DIGITS_SIZE = 32  # digits are 8x8; upscaled so they are visible in Spotlight and the animation


@dataclass
class ImageSet:
    """Images and labels of one dataset.

    ``*_images`` are sequences of RGB ``PIL.Image`` (possibly decoded lazily, one per
    index); ``*_labels`` are ``(n,)`` int64 indices into ``class_names``; ``eval_ids`` are
    ``(n_eval,)`` stable strings usable as file names.
    """

    train_images: Sequence
    train_labels: np.ndarray
    eval_images: Sequence
    eval_labels: np.ndarray
    eval_ids: list[str]
    class_names: list[str]
    dataset: str  # what the user gave
    eval_split: str  # the split the evaluation rows come from
    train_ids: list[str] | None = None  # (n_train,) stable strings, distinct from eval_ids

    def train_sample(self, size: int | None, seed: int = SEED) -> np.ndarray:
        """Indices of a seeded stratified sample of ``size`` training images (None: all), ascending."""
        return _subset(np.arange(len(self.train_labels)), self.train_labels, size, seed, "the training split", "train")

    def subset_eval(self, eval_size: int | None, seed: int = SEED) -> ImageSet:
        """This set with its evaluation rows cut to a seeded stratified subset of ``eval_size``."""
        idx = _subset(np.arange(len(self.eval_ids)), self.eval_labels, eval_size, seed, repr(self.dataset))
        if len(idx) == len(self.eval_ids):
            return self
        return ImageSet(
            train_images=self.train_images,
            train_labels=self.train_labels,
            eval_images=[self.eval_images[int(i)] for i in idx],
            eval_labels=self.eval_labels[idx],
            eval_ids=[self.eval_ids[int(i)] for i in idx],
            class_names=self.class_names,
            dataset=self.dataset,
            eval_split=self.eval_split,
            train_ids=self.train_ids,
        )


class _LazyImages(Sequence):
    """Rows ``indices`` of a ``datasets`` image column, decoded and converted to RGB on access."""

    def __init__(self, ds, column: str, indices: np.ndarray):
        self._ds = ds.select_columns([column])
        self._column = column
        self._indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = int(self._indices[i])
        try:
            return to_rgb(self._ds[row][self._column])
        except (OSError, SyntaxError, ValueError) as e:  # PIL: unidentified, truncated, broken chunks
            raise DataError(
                f"image {row} of the dataset cannot be decoded ({first_line(e)}); fix or remove it"
            ) from None


def load_images(
    dataset: str = DATASET,
    *,
    eval_size: int | None = None,
    seed: int = SEED,
    all_eval: bool = False,
    quiet: bool = False,
) -> ImageSet:
    """Load ``dataset`` (see the module doc) into an :class:`ImageSet`.

    ``eval_size``: a seeded stratified subset of the evaluation split of that many images
    (default: all of it). ``all_eval``: every image of every split is an evaluation image
    and there is no training data (used to embed a folder of images); unlabelled images
    are then allowed and get the class ``unlabeled``.
    """
    if eval_size is not None and eval_size < 1:
        raise DataError(f"eval size must be at least 1, got {eval_size}")
    if dataset == "digits" and not Path(dataset).exists():
        return _digits(eval_size=eval_size, seed=seed)
    with _datasets_progress(not quiet):
        dd = _open_datasets(dataset)
    return _from_datasets(dd, dataset, eval_size=eval_size, seed=seed, all_eval=all_eval)


# --- sources ------------------------------------------------------------------------


def _digits(*, eval_size, seed) -> ImageSet:
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8), 0..16 -> 0..255
    images = [
        Image.fromarray(p).resize((DIGITS_SIZE, DIGITS_SIZE), Image.Resampling.BILINEAR).convert("RGB") for p in pixels
    ]
    labels = bunch.target.astype(np.int64)
    train_idx, eval_idx = _split(labels, 0.2, seed)
    eval_idx = _subset(eval_idx, labels, eval_size, seed, "digits")
    return ImageSet(
        train_images=[images[i] for i in train_idx],
        train_labels=labels[train_idx],
        eval_images=[images[i] for i in eval_idx],
        eval_labels=labels[eval_idx],
        eval_ids=[f"digits-{i:05d}" for i in eval_idx],
        class_names=[str(c) for c in bunch.target_names],
        dataset="digits",
        eval_split="digits",
        train_ids=[f"digits-{i:05d}" for i in train_idx],
    )


def _open_datasets(dataset: str):
    """A ``DatasetDict`` from a save_to_disk directory, an image folder or a hub name."""
    import datasets

    path = Path(dataset).expanduser()
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            try:
                dd = datasets.load_from_disk(str(path))
            except Exception as e:  # a damaged save_to_disk directory
                raise DataError(f"could not read the save_to_disk dataset {path}: {first_line(e)}") from e
        else:
            try:
                dd = datasets.load_dataset("imagefolder", data_dir=str(path))
            except Exception as e:
                raise DataError(
                    f"could not read {path} as an image folder ({first_line(e)}); "
                    "expected one sub-folder of images per class, or a save_to_disk directory"
                ) from e
    else:
        why = hub_unreachable()
        if why:
            raise DataError(
                f"dataset {dataset!r} is not a local directory and could not be loaded from the hub "
                f"({why}): give a save_to_disk directory or an image folder"
            )
        try:
            dd = datasets.load_dataset(dataset)
        except Exception as e:
            why = "HF_HUB_OFFLINE is set and it is not in the local cache" if hub_offline() else first_line(e)
            raise DataError(
                f"dataset {dataset!r} is not a local directory and could not be loaded from the hub "
                f"({why}): give a save_to_disk directory or an image folder"
            ) from e
    if isinstance(dd, datasets.Dataset):
        dd = datasets.DatasetDict({"train": dd})
    if not isinstance(dd, datasets.DatasetDict) or not len(dd):
        raise DataError(f"dataset {dataset!r} holds no splits; expected a Dataset or DatasetDict")
    return dd


def hub_offline() -> bool:
    """Whether the Hugging Face libraries are in offline mode (HF_HUB_OFFLINE)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be used now, or None when it may be reachable.

    Without network the hub clients retry for a long while before giving up; this answers
    within a few seconds so bad names fail fast. With HF_HUB_OFFLINE set, returns None (the
    libraries then read their local cache and fail at once when the name is not there).
    """
    from huggingface_hub import constants

    if hub_offline():
        return None
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # a proxy decides reachability; let the client try
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return f"{host} cannot be reached; set HF_HUB_OFFLINE=1 to use the local cache"
    return None


# --- the one path every `datasets` source goes through --------------------------------


def _from_datasets(dd, dataset: str, *, eval_size, seed, all_eval) -> ImageSet:
    import datasets

    first = dd[next(iter(dd))]
    columns = list(first.column_names)
    image_col = next((c for c, f in first.features.items() if isinstance(f, datasets.Image)), None)
    if image_col is None:
        raise DataError(
            f"dataset {dataset!r} has no image column (columns: {', '.join(columns)}); "
            "expected a column with the datasets Image feature"
        )
    label_col = next((c for c, f in first.features.items() if isinstance(f, datasets.ClassLabel)), None)
    label_col = label_col or next((c for c in LABEL_NAMES if c in columns), None)

    if label_col is None and not all_eval:
        raise DataError(
            f"dataset {dataset!r} has no label column (columns: {', '.join(columns)}); expected a "
            "ClassLabel column or one named 'label' or 'labels' (an image folder needs one sub-folder per class)"
        )
    labels, class_names = _labels(dd, label_col)

    if all_eval:
        splits = list(dd)
        return ImageSet(
            train_images=[],
            train_labels=np.zeros(0, dtype=np.int64),
            eval_images=_Concat([_LazyImages(dd[s], image_col, np.arange(dd[s].num_rows)) for s in splits]),
            eval_labels=np.concatenate([labels[s] for s in splits]),
            eval_ids=[f"{s}-{i:05d}" for s in splits for i in range(dd[s].num_rows)],
            class_names=class_names,
            dataset=dataset,
            eval_split="+".join(splits),
        ).subset_eval(eval_size, seed)

    eval_name = next((s for s in EVAL_SPLITS if s in dd), None)
    train_name = "train" if "train" in dd else next((s for s in dd if s != eval_name), None)
    if train_name is None:  # one split only, and it is called test: split it like train
        train_name, eval_name = eval_name, None
    train_labels = labels[train_name]
    train_idx = np.arange(len(train_labels))
    if eval_name is None:  # carve the evaluation split out of train: eval_size images, else 20 %
        eval_name = train_name
        n = len(train_labels)
        if eval_size is not None and eval_size >= n:
            raise DataError(
                f"eval size {eval_size} leaves no training images: {dataset!r} has {n} images and no evaluation "
                f"split; use --eval-size {n - 1} or less"
            )
        train_idx, eval_idx = _split(train_labels, eval_size / n if eval_size else 0.2, seed)
    else:
        eval_idx = np.arange(len(labels[eval_name]))
    eval_idx = _subset(eval_idx, labels[eval_name], eval_size, seed, f"split '{eval_name}' of {dataset!r}")
    return ImageSet(
        train_images=_LazyImages(dd[train_name], image_col, train_idx),
        train_labels=train_labels[train_idx],
        eval_images=_LazyImages(dd[eval_name], image_col, eval_idx),
        eval_labels=labels[eval_name][eval_idx],
        eval_ids=[f"{eval_name}-{i:05d}" for i in eval_idx],
        class_names=class_names,
        dataset=dataset,
        eval_split=eval_name,
        train_ids=[f"{train_name}-{i:05d}" for i in train_idx],
    )


def _labels(dd, label_col) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per split ``(n,)`` int64 class indices, and the class names they index."""
    import datasets

    if label_col is None:
        return {s: np.zeros(dd[s].num_rows, dtype=np.int64) for s in dd}, ["unlabeled"]
    feature = dd[next(iter(dd))].features[label_col]
    raw = {s: list(dd[s][label_col]) for s in dd}
    if isinstance(feature, datasets.ClassLabel):
        return {s: np.asarray(v, dtype=np.int64) for s, v in raw.items()}, list(feature.names)
    # Plain ints or strings: the classes are the sorted union over every split.
    values = sorted({v for vs in raw.values() for v in vs}, key=lambda v: (str(type(v)), v))
    index = {v: k for k, v in enumerate(values)}
    return {s: np.asarray([index[v] for v in vs], dtype=np.int64) for s, vs in raw.items()}, [str(v) for v in values]


class _Concat(Sequence):
    def __init__(self, parts):
        self._parts = parts
        self._starts = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self):
        return int(self._starts[-1])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self._parts[k][i - self._starts[k]]


# --- splitting ------------------------------------------------------------------------


def _stratifiable(labels: np.ndarray, n_pick: int) -> bool:
    counts = np.bincount(labels) if len(labels) else np.zeros(0)
    counts = counts[counts > 0]
    return len(counts) > 0 and counts.min() >= 2 and len(counts) <= n_pick <= len(labels) - len(counts)


def _split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified ``(train, test)`` row indices, each ascending."""
    from sklearn.model_selection import train_test_split

    n = len(labels)
    if n < 2:
        raise DataError(f"only {n} image(s) in the dataset; need at least 2 to split off an evaluation set")
    n_test = max(1, round(n * test_fraction))
    stratify = labels if _stratifiable(labels, n_test) else None
    train, test = train_test_split(np.arange(n), test_size=n_test, stratify=stratify, random_state=seed)
    return np.sort(train), np.sort(test)


def _subset(
    idx: np.ndarray, labels: np.ndarray, size: int | None, seed: int, what: str, option: str = "eval"
) -> np.ndarray:
    """A seeded stratified subset of ``size`` of the rows ``idx`` (``labels[idx]`` their classes), ascending.
    ``option``: which ``--OPTION-size`` / ``--record-OPTION`` the error names."""
    from sklearn.model_selection import train_test_split

    n = len(idx)
    if size is None or size == n:
        return idx
    if size > n:
        data, flag = ("evaluation", "--eval-size") if option == "eval" else ("training", "--record-train")
        raise DataError(
            f"{option} size {size} is larger than the {data} data ({n} images in {what}); use {flag} {n} or less"
        )
    sub_labels = labels[idx]
    stratify = sub_labels if _stratifiable(sub_labels, size) else None
    picked, _ = train_test_split(idx, train_size=size, stratify=stratify, random_state=seed)
    return np.sort(picked)


@contextlib.contextmanager
def _datasets_progress(enabled: bool):
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled and not enabled:
            datasets.enable_progress_bars()
