"""Which signal finds mislabelled training images: digits with a seeded share of training labels flipped.

The demo's setup (the built-in small ViT, digits split 80/20 stratified, the demo's epochs and snapshots), with
``fraction`` of the *training* labels moved to another class (seeded, uniform over the other
nine) and every training image recorded (``finetune --record-train all``). Each signal ranks
the training images, most suspicious first; with K flipped images:

* ``precision@K`` (= recall@K): the share of the K top-ranked images that were flipped;
* ``average precision``: the area under the precision-recall curve of the whole ranking;
* for a flag (an issue group, a region): how many it flags, precision and recall.

Nothing here is timed. ``python -m benchmarks mislabels`` prints the table; tests/test_mislabels.py
checks a shorter run of the same code.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

#: The ranked signals: name -> (table column, True when larger values are more suspicious).
RANKINGS = {
    "cartography confidence (confidence_mean, low first)": ("confidence_mean", False),
    "AUM margin (margin_mean, low first)": ("margin_mean", False),
    "correctness (correct_fraction, low first)": ("correct_fraction", False),
    "forgetting (forgetting_events, high first)": ("forgetting_events", True),
    "cleanlab label quality at the last snapshot (low first)": ("label_quality_last", False),
}


#: A shorter training that still learns (80 % accuracy): ``--quick``, and tests/test_mislabels.py.
QUICK = dict(epochs=8, learning_rate=3e-3, batch_size=64, save_steps=20)


def write_flipped_digits(path: Path, *, fraction: float = 0.05, seed: int = 0) -> np.ndarray:
    """A ``save_to_disk`` digits dataset at ``path`` (train / test, 32x32 RGB as the demo's) with
    ``fraction`` of the training labels flipped; returns the flipped rows of the train split."""
    import datasets
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    pixels = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images = [Image.fromarray(p).resize((32, 32), Image.Resampling.BILINEAR).convert("RGB") for p in pixels]
    labels = bunch.target.astype(np.int64)
    train, test = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=seed)
    rng = np.random.default_rng(seed)
    train_labels = labels[train].copy()
    flipped = np.sort(rng.choice(len(train), size=round(fraction * len(train)), replace=False))
    train_labels[flipped] = (train_labels[flipped] + rng.integers(1, 10, size=len(flipped))) % 10
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
    )

    def split(rows, split_labels):
        return datasets.Dataset.from_dict(
            {"image": [images[i] for i in rows], "label": split_labels.tolist()}, features=features
        )

    datasets.DatasetDict({"train": split(train, train_labels), "test": split(test, labels[test])}).save_to_disk(path)
    return flipped


def score_signals(df, flipped_ids) -> list[dict]:
    """One row per signal: ``signal``, ``flagged``, ``precision``, ``recall`` and, for a ranking,
    ``precision@K`` and ``average precision``. ``df``: the training set's review table."""
    from sklearn.metrics import average_precision_score

    from spotreview.reviewing.issues import issue_groups

    truth = df["id"].isin(set(flipped_ids)).to_numpy()
    k = int(truth.sum())
    rows = []
    for name, (column, larger_first) in RANKINGS.items():
        if column not in df.columns:
            continue
        values = df[column].to_numpy(dtype=np.float64)
        suspicion = values if larger_first else -values
        top = np.argsort(-suspicion, kind="stable")[:k]
        rows.append(
            {
                "signal": name,
                "precision@K": float(truth[top].mean()),
                "average precision": float(average_precision_score(truth, np.nan_to_num(suspicion, nan=-np.inf))),
            }
        )
    flags = {f"issue group: {g.title}": np.isin(np.arange(len(df)), g.rows) for g in issue_groups(df)}
    flags["data map region: hard"] = (df["data_map_region"].astype(str) == "hard").to_numpy()
    for name, flag in flags.items():
        hits = int((flag & truth).sum())
        rows.append(
            {
                "signal": name,
                "flagged": int(flag.sum()),
                "precision": hits / flag.sum() if flag.any() else float("nan"),
                "recall": hits / k,
            }
        )
    return rows


def mislabel_run(out: Path, *, fraction: float = 0.05, seed: int = 0, quiet: bool = True, **finetune_options):
    """Fine-tune on flipped digits into ``out`` with every training image recorded (the demo's
    settings unless ``finetune_options`` say otherwise), analyse; returns ``(training-set
    review table, flipped ids)``."""
    import spotreview
    from spotreview.rundir.evalset import read_eval

    data = out.parent / f"{out.name}-data"
    flipped = write_flipped_digits(data, fraction=fraction, seed=seed)
    done = spotreview.finetune(
        out, dataset=str(data), record_train="all", seed=seed, quiet=quiet, overwrite=True, **finetune_options
    )
    spotreview.analyze(done.run, quiet=quiet)
    train = done.run.for_set("train")
    ids = read_eval(train)["id"].to_numpy()
    return spotreview.build_table(train, save=False), ids[flipped]


def run(quick: bool = False) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        df, flipped = mislabel_run(Path(tmp) / "run", **(QUICK if quick else {}))
    note = f"{len(flipped)} of {len(df)} training labels flipped"
    out = []
    for row in score_signals(df, flipped):
        for measure in ("precision@K", "average precision", "precision", "recall"):
            if measure in row:
                out.append(
                    {
                        "benchmark": "mislabels",
                        "measure": f"{row['signal']}: {measure}"
                        + (f" ({row['flagged']} flagged)" if "flagged" in row else ""),
                        "value": round(row[measure], 3),
                        "unit": "",
                        "note": note,
                    }
                )
    return out
