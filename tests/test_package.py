"""The package surface: public names, the entry points, and a --help that imports nothing heavy."""

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import grimp

import spotreview

MODULES = sorted(
    m.name.removeprefix("spotreview.")
    for m in pkgutil.walk_packages(spotreview.__path__, "spotreview.")
    if not m.name.endswith("__main__")
)


def test_every_public_name_is_the_object_its_module_defines():
    assert sorted(spotreview.__all__) == sorted([*spotreview._EXPORTS, "__version__"])
    for name, module in spotreview._EXPORTS.items():
        defined = getattr(importlib.import_module(f"spotreview.{module}"), name)
        assert getattr(spotreview, name) is defined, name
        assert inspect.isfunction(defined) or inspect.isclass(defined), name


def test_importing_every_module_keeps_the_stage_functions_functions():
    """A submodule named like a public function (``export.py``) would rebind the package
    attribute to the module on import; no module may be named so."""
    assert not set(MODULES) & set(spotreview._EXPORTS)
    for module in MODULES:
        importlib.import_module(f"spotreview.{module}")
    for name, module in spotreview._EXPORTS.items():
        assert getattr(spotreview, name) is getattr(sys.modules[f"spotreview.{module}"], name), name
    for stage in ("finetune", "embed", "analyze", "review", "approve", "export"):
        assert inspect.isfunction(getattr(spotreview, stage)), stage


def test_unknown_name_is_an_attribute_error():
    try:
        spotreview.no_such_name  # noqa: B018 - the attribute access is the test
    except AttributeError as e:
        assert str(e) == "module 'spotreview' has no attribute 'no_such_name'"
    else:
        raise AssertionError("spotreview.no_such_name resolved")


def test_help_is_light_and_python_m_works():
    code = (
        "import sys; from click.testing import CliRunner; from spotreview.cli import cli;"
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('torch', 'transformers', 'renumics', 'matplotlib', 'cleanlab') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "spotreview", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"spotreview, version {spotreview.__version__}"


def test_the_cli_calls_only_the_public_api():
    """The commands reach the library through ``spotreview.X`` (a name in ``_EXPORTS``), plus
    the defaults and the helpers for people and processes (``util``); nothing deeper."""
    graph = grimp.build_graph("spotreview", cache_dir=None)
    cli_modules = sorted(m for m in graph.modules if m == "spotreview.cli" or m.startswith("spotreview.cli."))
    allowed = ("spotreview", "spotreview.defaults")
    deeper = sorted(
        f"{m} -> {imported}"
        for m in cli_modules
        for imported in graph.find_modules_directly_imported_by(m)
        if imported not in allowed and not imported.startswith(("spotreview.cli", "spotreview.util."))
    )
    assert deeper == []
    used = set()
    for m in cli_modules:
        path = Path(importlib.import_module(m).__file__)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "spotreview":
                used.add(node.attr)
            if isinstance(node, ast.ImportFrom) and node.module == "spotreview":
                used.update(a.name for a in node.names if a.name != "defaults")
    assert used and used <= set(spotreview._EXPORTS) | {"__version__"}, used - set(spotreview._EXPORTS)


def test_stage_results_are_typed_records():
    """Every stage returns a dataclass exported from ``spotreview``, not a dict or a list."""
    import dataclasses
    import typing

    for function, record in (
        ("finetune", "Finetuned"),
        ("embed", "Embedded"),
        ("review", "ReviewResult"),
        ("exclude", "Excluded"),
        ("approve", "Approval"),
        ("approval_preview", "Approval"),
        ("approval_status", "ApprovalStatus"),
        ("run_status", "RunStatus"),
        ("export", "Exported"),
    ):
        cls = getattr(spotreview, record)
        assert dataclasses.is_dataclass(cls) and cls.__doc__, record
        hints = typing.get_type_hints(getattr(spotreview, function))
        assert hints["return"] is cls, function
