"""The package surface: public names, the entry points, and a --help that imports nothing heavy."""

import importlib
import subprocess
import sys

import spotreview


def test_every_public_name_resolves():
    for name in spotreview.__all__:
        assert getattr(spotreview, name) is not None, name
    # the stage functions stay functions even after their modules are imported
    for module in ("animation", "embedding", "reviewing"):
        importlib.import_module(f"spotreview.{module}")

    assert callable(spotreview.embed) and callable(spotreview.export) and callable(spotreview.review)


def test_help_is_light_and_python_m_works():
    code = (
        "import sys; from click.testing import CliRunner; from spotreview.cli import cli;"
        "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('torch', 'transformers', 'renumics', 'matplotlib', 'cleanlab') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run(
        [sys.executable, "-m", "spotreview", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"spotreview, version {spotreview.__version__}"
