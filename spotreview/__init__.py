"""spotreview: watch a model's embeddings evolve while it is fine-tuned.

``finetune -> embed -> analyze -> review (Spotlight, approve) -> export``, and ``compare`` for
two runs. Every stage is a plain function here that returns a typed record (``Finetuned``,
``Embedded``, ``Analysis``, ``ReviewResult``, ``Approval``, ``Exported``, ``Compared``); the
``spotreview`` CLI is a thin layer over them. Names are imported lazily so ``import spotreview``
(and ``spotreview --help``) stays instant.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it. Stage packages are named apart from the stage
# functions (``reviewing``, not ``review``), so importing one never rebinds a public name.
_EXPORTS = {
    "SpotreviewError": "errors",
    "Run": "rundir.run",
    "load_images": "embedding.sources",
    "embed": "embedding.embed",
    "Embedded": "embedding.embed",
    "finetune": "training.finetune",
    "Finetuned": "training.finetune",
    "EmbeddingRecorder": "training.recorder",
    "analyze": "analysis.analyze",
    "Analysis": "analysis.store",
    "load_analysis": "analysis.store",
    "analysis_digest": "analysis.store",
    "build_table": "reviewing.table",
    "read_table": "reviewing.table",
    "review": "reviewing.review",
    "start_review": "reviewing.review",
    "ReviewResult": "reviewing.review",
    "exclude": "reviewing.exclusions",
    "Excluded": "reviewing.exclusions",
    "approve": "reviewing.approval",
    "approval_preview": "reviewing.approval",
    "approval_status": "reviewing.approval",
    "Approval": "reviewing.approval",
    "ApprovalStatus": "reviewing.approval",
    "run_status": "reviewing.status",
    "follow": "reviewing.follow",
    "FollowUpdate": "reviewing.follow",
    "RunStatus": "reviewing.status",
    "SnapshotMetrics": "reviewing.status",
    "write_bundle": "reviewing.bundle",
    "load_layout": "reviewing.layouts",
    "default_layout": "reviewing.layouts",
    "save_layout": "reviewing.layouts",
    "export": "rendering.export",
    "Exported": "rendering.export",
    "comparison_table": "reviewing.compare",
    "approve_comparison": "reviewing.compare_approval",
    "preview_comparison": "reviewing.compare_approval",
    "comparison_approval_status": "reviewing.compare_approval",
    "ComparisonApproval": "reviewing.compare_approval",
    "compare": "rendering.compare",
    "Compared": "rendering.compare",
    "issue_key": "rendering.rings",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'spotreview' has no attribute {name!r}")
