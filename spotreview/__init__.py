"""spotreview: watch a model's embeddings evolve while it is fine-tuned.

``finetune -> embed -> analyze -> review (Spotlight, approve) -> export``. Every stage is
a plain function here; the ``spotreview`` CLI is a thin layer over them. Names are
imported lazily so ``import spotreview`` (and ``spotreview --help``) stays instant.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

_EXPORTS = {
    "SpotreviewError": "errors",
    "Run": "rundir",
    "load_images": "data",
    "finetune": "train",
    "embed": "embed",
    "EmbeddingRecorder": "embed",
    "analyze": "analysis",
    "load_analysis": "analysis",
    "build_table": "table",
    "review": "review",
    "exclude": "review",
    "approve": "review",
    "approval_status": "review",
    "default_layout": "review",
    "save_layout": "review",
    "export": "export",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


class _Package(types.ModuleType):
    """Keeps ``spotreview.embed``/``review``/``export`` the functions: importing a submodule
    of the same name (``from .embed import ...`` anywhere) would otherwise rebind the
    package attribute to the module, and ``spotreview.embed(...)`` would stop working."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'spotreview' has no attribute {name!r}")
