"""spotreview: watch a model's embeddings evolve while it is fine-tuned.

``finetune -> embed -> analyze -> review (Spotlight, approve) -> export``. Every stage is
a plain function here; the ``spotreview`` CLI is a thin layer over them. Names are
imported lazily so ``import spotreview`` (and ``spotreview --help``) stays instant.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "SpotreviewError": "errors",
    "Run": "rundir",
    "load_images": "data",
    "finetune": "train",
    "embed": "embedding",
    "EmbeddingRecorder": "embedding",
    "Analysis": "analysis",
    "analyze": "analysis",
    "load_analysis": "analysis",
    "analysis_digest": "analysis",
    "build_table": "table",
    "review": "reviewing",
    "exclude": "reviewing",
    "approve": "reviewing",
    "approval_status": "reviewing",
    "run_status": "reviewing",
    "load_layout": "reviewing",
    "default_layout": "reviewing",
    "save_layout": "reviewing",
    "export": "animation",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'spotreview' has no attribute {name!r}")
