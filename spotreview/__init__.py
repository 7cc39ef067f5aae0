"""spotreview: watch a model's embeddings evolve while it is fine-tuned.

``finetune -> embed -> analyze -> review (Spotlight, approve) -> export``. Every stage is
a plain function here; the ``spotreview`` CLI is a thin layer over them. Names are
imported lazily so ``import spotreview`` (and ``spotreview --help``) stays instant.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it. No module may be named like a public function
# (e.g. ``export.py``): importing it would rebind ``spotreview.export`` to the module.
_EXPORTS = {
    "SpotreviewError": "errors",
    "Run": "rundir",
    "load_images": "data",
    "finetune": "train",
    "Finetuned": "train",
    "embed": "embedding",
    "EmbeddingRecorder": "recorder",
    "Analysis": "analysis_store",
    "analyze": "analysis",
    "load_analysis": "analysis_store",
    "analysis_digest": "analysis_store",
    "build_table": "table",
    "read_table": "table",
    "write_bundle": "bundle",
    "apply_decisions": "bundle",
    "review": "server",
    "start_review": "server",
    "exclude": "exclusions",
    "approve": "approval",
    "approval_status": "approval",
    "run_status": "status",
    "load_layout": "layouts",
    "default_layout": "layouts",
    "save_layout": "layouts",
    "export": "animation",
    "Exported": "animation",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'spotreview' has no attribute {name!r}")
