"""The package surface: public names, the entry points, and a --help that imports nothing heavy."""

import importlib
import inspect
import pkgutil
import subprocess
import sys

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
        spotreview.no_such_name
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
