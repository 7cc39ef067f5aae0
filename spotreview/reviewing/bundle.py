"""Portable review bundles: a run's review as one zip for a teammate, and their decisions back.

``write_bundle(run, "review.zip")`` writes::

    bundle.json          format, spotreview version, source run name, image count, class names
    review.parquet       the review table; image paths relative to the bundle (images/ID.png)
    images/ID.png        every evaluation image
    layout.json          the layout to serve (the default for the table's columns, or --layout)
    summary.json         analysis/summary.json (per-snapshot metrics, top-k ids)
    manifest.json        the run's manifest, absolute paths reduced to their last part
    exclusions.json      the run's exclusions when bundled
    approval.json        the run's approval record, when there is one

No embeddings, checkpoints or absolute paths. ``spotreview review review.zip`` extracts it
into a cache directory keyed by the zip's digest (``BundleSource``). This module owns the
decisions file, ``review.decisions.json`` beside the zip: exclusions made on a bundle
(``spotreview.exclude(bundle, ids)``), which ``spotreview.exclude(run, from_file=...)``
applies to the original run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from spotreview import __version__
from spotreview.analysis.store import read_summary_text
from spotreview.errors import ReviewError
from spotreview.rundir.atomic import atomic_path, sha256_file, write_json
from spotreview.rundir.exclusions import read_exclusions
from spotreview.rundir.run import IMAGE_SETS, Run, user_cache_dir

FORMAT = 1
TABLE, LAYOUT, INFO = "review.parquet", "layout.json", "bundle.json"


def _scrub(obj):
    """``obj`` with every absolute path string reduced to its last part."""
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    if isinstance(obj, str) and os.path.isabs(obj):
        return Path(obj).name
    return obj


def write_bundle(
    run,
    out,
    *,
    layout=None,
    outlier_threshold: int | None = None,
    force: bool = False,
    image_set: str | None = None,
    compare=None,
) -> Path:
    """Write ``run``'s review (of its evaluation set, or ``image_set``) as a zip bundle at
    ``out`` (atomically); returns its path. ``compare``: another run of the same evaluation set;
    the bundle then holds the comparison table (``reviewing.compare``) and its layout."""
    from spotreview.reviewing.compare_review import bundle_contents
    from spotreview.reviewing.layouts import check_layout_columns, layout_json, load_layout
    from spotreview.reviewing.table import write_table

    run, out = Run(run, image_set).require(), Path(out)
    if out.suffix != ".zip":
        raise ReviewError(f"{out}: a bundle's name must end in .zip")
    if out.exists() and not force:
        raise ReviewError(f"{out} already exists; pass --force to overwrite it")
    df, parsed, approval = bundle_contents(run, compare, outlier_threshold=outlier_threshold)
    if layout is not None:
        parsed = load_layout(layout)
        check_layout_columns(parsed, df.columns, layout)
    info = {
        "format": FORMAT,
        "spotreview": __version__,
        "run": run.root.name,
        "image_set": run.image_set,
        "images": len(df),
        "class_names": df.attrs["class_names"],
        **({"compare": df.attrs["comparison"]["b"]} if compare is not None else {}),
    }
    with tempfile.TemporaryDirectory() as tmpdir, atomic_path(out) as tmp:
        table = write_table(df, Path(tmpdir) / TABLE)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(INFO, json.dumps(info, indent=2))
            z.write(table, TABLE)
            z.writestr(LAYOUT, layout_json(parsed))
            z.writestr("summary.json", read_summary_text(run))
            z.writestr("manifest.json", json.dumps(_scrub(run.read_manifest()), indent=2))
            z.writestr("exclusions.json", json.dumps(read_exclusions(run), indent=2))
            if approval.is_file():
                z.writestr("approval.json", json.dumps(_scrub(json.loads(approval.read_text())), indent=2))
            for rel in df["image"]:
                # PNGs are compressed already; storing them saves CPU and no space.
                z.write(run.root / rel, rel, compress_type=zipfile.ZIP_STORED)
    return out


def decisions_path(bundle) -> Path:
    """``review.decisions.json`` beside ``review.zip``."""
    bundle = Path(bundle)
    return bundle.with_name(bundle.stem + ".decisions.json")


def _bad(bundle, what: str) -> ReviewError:
    return ReviewError(
        f"{bundle} is not a spotreview bundle ({what}); make one with `spotreview bundle RUN -o FILE.zip`"
    )


def extract(bundle) -> Path:
    """Check ``bundle`` and extract it (once) into ``$XDG_CACHE_HOME/spotreview/bundles/DIGEST``;
    returns that directory. Refuses members that would land outside it (zip-slip)."""
    bundle = Path(bundle)
    if not zipfile.is_zipfile(bundle):
        raise _bad(bundle, "not a zip file")
    digest = sha256_file(bundle)[:16]
    cache = user_cache_dir() / "bundles"
    target = cache / digest
    if (target / INFO).is_file():
        return target
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        for name in names:
            p = PurePosixPath(name)
            if p.is_absolute() or ".." in p.parts or "\\" in name or ":" in name:
                raise _bad(bundle, f"member {name!r} would be written outside the bundle")
        for need in (INFO, TABLE):
            if need not in names:
                raise _bad(bundle, f"no {need} inside")
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=cache))
        try:
            z.extractall(tmp)
            try:
                tmp.rename(target)
            except OSError:  # another process extracted it first
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def parse_decisions(path: Path) -> dict[str, str]:
    """The exclusions ({id: reason}) of a decisions file; a one-line ``ReviewError`` when it
    is not one."""
    return decisions_and_set(path)[0]


def decisions_and_set(path: Path) -> tuple[dict[str, str], str]:
    """:func:`parse_decisions`, and the image set the bundle was made from (``eval`` for
    files that do not say)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        image_set = obj.get("image_set", "eval")
        if image_set not in IMAGE_SETS:
            raise TypeError(f"unknown image set {image_set!r}")
        return {str(k): str(v) for k, v in obj["exclusions"].items()}, image_set
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise ReviewError(
            f"{path} is not a decisions file ({type(e).__name__}); "
            f"one is written by `spotreview exclude BUNDLE.zip ID...`"
        ) from e


def read_decisions(bundle) -> dict[str, str]:
    """The exclusions made on ``bundle`` ({id: reason}); {} when there are none yet."""
    path = decisions_path(bundle)
    return parse_decisions(path) if path.is_file() else {}


class BundleSource:
    """What a review serves from a bundle: its table with the bundle's exclusions plus the
    decisions file's, images from the extracted copy, its layout."""

    def __init__(self, bundle):
        from spotreview.reviewing.table import read_table

        self.name = Path(bundle)
        self.root = extract(bundle)
        self.decisions = decisions_path(bundle)
        self.watched = (self.decisions,)
        self.default_layout = self.root / LAYOUT if (self.root / LAYOUT).is_file() else None
        try:
            self._table = read_table(self.root / TABLE)
        except Exception as e:  # a damaged parquet file: pyarrow raises several kinds
            raise _bad(bundle, f"{TABLE} unreadable: {type(e).__name__}") from e
        missing = [p for p in self._table["image"] if not (self.root / p).is_file()]
        if missing:
            raise _bad(bundle, f"{len(missing)} image(s) missing, e.g. {missing[0]}")
        self.ids = set(self._table["id"])

    def table(self):
        from spotreview.reviewing.table import absolute_images

        df = self._table.copy()
        decided = read_decisions(self.name)
        if decided:
            hit = df["id"].isin(decided.keys())
            df.loc[hit, "exclude"] = True
            df.loc[hit, "exclude_reason"] = [decided[i] for i in df.loc[hit, "id"]]
        return absolute_images(df, self.root)


def write_decisions(source: BundleSource, exclusions: dict[str, str]) -> Path:
    """Write the decisions file of the bundle ``source`` (atomically): the source run's name,
    the bundle's digest and ``exclusions`` ({id: reason}); returns its path."""
    info = json.loads((source.root / INFO).read_text(encoding="utf-8"))
    record = {
        "run": info.get("run"),
        "image_set": info.get("image_set", "eval"),
        "bundle": sha256_file(source.name),
        "exclusions": exclusions,
    }
    write_json(source.decisions, record)
    return source.decisions
