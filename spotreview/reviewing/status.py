"""Where a run stands: snapshots, first/last metrics, exclusions and approval (``spotreview status``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from spotreview.analysis.store import Analysis, load_analysis
from spotreview.defaults import TRUST_LOW
from spotreview.errors import SpotreviewError
from spotreview.reviewing.approval import ApprovalStatus, approval_status
from spotreview.rundir.exclusions import read_exclusions
from spotreview.rundir.run import Run
from spotreview.rundir.traininglog import unfinished

#: Most atypical images listed per snapshot in a :class:`SnapshotMetrics`.
TOP = 3


@dataclass(frozen=True)
class SnapshotMetrics:
    """One snapshot's metrics from the stored analysis."""

    step: int
    accuracy: float  # NaN without probabilities
    knn_accuracy: float
    trustworthiness: float  # of its 2-D picture, in [0, 1]; NaN with too few images
    disparity: float  # Procrustes disparity of its alignment
    top: list[str]  # ids of the most atypical images, most atypical first
    top_scores: list[float]  # their outlier scores (lower = more atypical)


@dataclass(frozen=True)
class RunStatus:
    """What :func:`run_status` found."""

    run: Run
    snapshots: list[int]  # steps with embeddings, ascending
    unfinished: bool  # the manifest says training has not finished
    exclusions: dict[str, str]  # {id: reason}
    approval: ApprovalStatus
    align: str | None  # the analysis' alignment, None without an analysis
    first: SnapshotMetrics | None  # the first and last snapshot of the analysis
    last: SnapshotMetrics | None
    analysis_error: str | None  # why there is no (up-to-date) analysis
    # Steps whose 2-D picture has a trustworthiness below TRUST_LOW: there it misrepresents the
    # embedding's neighbours; [] without an analysis
    low_trust: list[int] = field(default_factory=list)
    # The precision each way of embedding actually ran in, from the manifest: {"recorded while
    # training": "bf16", "spotreview embed": "int8"}; {} when the manifest says nothing
    precision: dict[str, str] = field(default_factory=dict)


def snapshot_metrics(a: Analysis, k: int) -> SnapshotMetrics:
    """The metrics of snapshot ``k`` (an index into ``a.steps``) of the analysis ``a``."""
    top = a.top(k % len(a.steps), TOP)
    return SnapshotMetrics(
        step=int(a.steps[k]),
        accuracy=float(a.accuracy[k]),
        knn_accuracy=float(a.knn_accuracy[k]),
        trustworthiness=float(a.trustworthiness[k]),
        disparity=float(a.disparity[k]),
        top=[a.ids[i] for i in top],
        top_scores=[float(a.scores[k, i]) for i in top],
    )


def run_status(run) -> RunStatus:
    """Where ``run`` stands: snapshots, first/last metrics, exclusions, approval.

    A missing or outdated analysis is not an error here: ``analysis_error`` says why.
    """
    run = Run(run).require()
    a, error = None, None
    try:
        a = load_analysis(run)
    except SpotreviewError as e:
        error = str(e)
    return RunStatus(
        run=run,
        snapshots=run.snapshots(),
        unfinished=unfinished(run),
        exclusions=read_exclusions(run),
        approval=approval_status(run, analysis=a),  # the analysis is hashed once
        align=None if a is None else a.align,
        first=None if a is None else snapshot_metrics(a, 0),
        last=None if a is None else snapshot_metrics(a, -1),
        analysis_error=error,
        low_trust=[] if a is None else [int(s) for s, t in zip(a.steps, a.trustworthiness) if t < TRUST_LOW],
        precision=embedding_precision(run),
    )


def embedding_precision(run: Run) -> dict[str, str]:
    """The precision the run's embeddings were computed in, by who computed them: the recorder
    while training (``parameters.embed_precision``, written by ``spotreview finetune``) and
    ``spotreview embed`` (``embed.precision``, its last call)."""
    manifest = run.read_manifest() if run.manifest.is_file() else {}
    found = {
        "recorded while training": (manifest.get("parameters") or {}).get("embed_precision"),
        "spotreview embed": (manifest.get("embed") or {}).get("precision"),
    }
    return {who: str(p) for who, p in found.items() if p}
