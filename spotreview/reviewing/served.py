"""What a review tells its Spotlight server through the environment the server starts with.

Spotlight's server is a child process started with a copy of ``os.environ``; while
:func:`spotreview.reviewing.review.start_review` starts it:

* :func:`analytics_choice` sets Spotlight's analytics opt-out;
* :func:`serving` puts a :class:`Served` record (JSON) in ``SPOTREVIEW_SERVED``: the run or
  bundle served, for the spotreview Spotlight plugin (``renumics/spotlight_plugins/spotreview``),
  which reads it once when the server starts. A server started without it (a plain
  ``spotlight.show(df)``) has no record, and the plugin stays inert. Where the server would
  not find the plugin by itself (an editable install, :func:`plugin_extra_path`), it also
  puts the checkout on the server's ``PYTHONPATH``.

Both restore the environment afterwards, so nothing leaks into servers started later.
"""

from __future__ import annotations

import contextlib
import json
import os
import pkgutil
from dataclasses import asdict, dataclass
from pathlib import Path

from spotreview.defaults import IMAGE_SETS
from spotreview.errors import ReviewError

ENV = "SPOTREVIEW_SERVED"
PLUGIN = "renumics.spotlight_plugins.spotreview"  # the plugin package, beside the spotreview package
#: Hosts Spotlight serves without TLS; any other needs --insecure, and so do the page's writes.
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def _spotlight_finds_plugin() -> bool:
    """Whether Spotlight's plugin loader finds the plugin: it lists the namespace's folders
    (``pkgutil.iter_modules``) rather than asking the import system."""
    try:
        import renumics.spotlight_plugins as namespace
    except ImportError:
        return False
    return any(m.name == "spotreview" for m in pkgutil.iter_modules(namespace.__path__))


def plugin_extra_path() -> str | None:
    """The folder a Spotlight server needs on its path to load the plugin, or None when it
    needs none (or the plugin is not there at all).

    A wheel installs the plugin into Spotlight's namespace folder. An editable install
    (``pip install -e .``) maps the plugin's module for imports, but Spotlight lists folders,
    which such a mapping does not show; the plugin then sits in the checkout, beside the
    ``spotreview`` package, and the checkout is the folder to add.
    """
    if _spotlight_finds_plugin():
        return None
    import spotreview

    checkout = Path(spotreview.__file__).resolve().parents[1]
    return str(checkout) if (checkout / Path(*PLUGIN.split(".")) / "__init__.py").is_file() else None


def plugin_available() -> bool:
    """Whether the servers a review starts load the spotreview Spotlight plugin."""
    return _spotlight_finds_plugin() or plugin_extra_path() is not None


@dataclass(frozen=True)
class Served:
    """The run (and image set) or the bundle a review serves, and whether its page may write."""

    run: str | None  # the run directory (absolute), None for a bundle
    image_set: str  # the run's image set ("eval" or "train")
    bundle: str | None  # the bundle's .zip (absolute), None for a run
    layout: str | None  # the layout file served (absolute), None for the default
    writes: bool  # the page may exclude and approve
    read_only: str  # why it may not ("" when it may)

    def target(self):
        """What ``exclude`` takes: the bundle's path, or the run seen from its image set."""
        from spotreview.rundir.run import Run

        return Path(self.bundle) if self.bundle else Run(self.run, self.image_set)


def served_record(source, *, layout, host: str, insecure: bool) -> Served:
    """The :class:`Served` record of a review's source (``RunSource`` or ``BundleSource``)."""
    writes = host in LOCAL_HOSTS or insecure
    why = "" if writes else f"the review serves {host} without --insecure; exclude and approve in a terminal"
    bundle = getattr(source, "decisions", None) is not None
    run = None if bundle else source.run
    return Served(
        run=None if run is None else str(Path(run.root).resolve()),
        image_set="eval" if run is None else run.image_set,
        bundle=str(Path(source.name).resolve()) if bundle else None,
        layout=None if layout is None else str(Path(layout).resolve()),
        writes=writes,
        read_only=why,
    )


@contextlib.contextmanager
def analytics_choice(analytics: bool):
    """While active, Spotlight's usage analytics are off (``analytics`` false) or allowed.

    The server reads ``SPOTLIGHT_OPT_OUT`` / ``SPOTLIGHT_OPT_IN`` from its environment: the
    variables are set while the server starts, and this process's settings object with them;
    both are restored after.
    """
    from renumics.spotlight.settings import settings

    keys = ("SPOTLIGHT_OPT_OUT", "SPOTLIGHT_OPT_IN")
    saved_env, saved = {k: os.environ.get(k) for k in keys}, (settings.opt_out, settings.opt_in)
    os.environ["SPOTLIGHT_OPT_OUT"] = "false" if analytics else "true"
    settings.opt_out = not analytics
    if not analytics:
        os.environ["SPOTLIGHT_OPT_IN"] = "false"
        settings.opt_in = False
    try:
        yield
    finally:
        for key, value in saved_env.items():
            _restore(key, value)
        settings.opt_out, settings.opt_in = saved


def _restore(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


@contextlib.contextmanager
def serving(served: Served):
    """While active, ``SPOTREVIEW_SERVED`` holds ``served`` for a Spotlight server started now,
    and ``PYTHONPATH`` starts with :func:`plugin_extra_path` when there is one."""
    saved = {key: os.environ.get(key) for key in (ENV, "PYTHONPATH")}
    os.environ[ENV] = json.dumps(asdict(served))
    extra = plugin_extra_path()
    if extra is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (extra, saved["PYTHONPATH"]) if p)
    try:
        yield
    finally:
        for key, value in saved.items():
            _restore(key, value)


def served_from_env(environ=None) -> Served | None:
    """The record a review left in ``environ`` (default ``os.environ``); None without one.
    A record that is not one (set by hand, another version) is a one-line ``ReviewError``."""
    text = (os.environ if environ is None else environ).get(ENV)
    if not text:
        return None
    try:
        obj = json.loads(text)
        served = Served(**obj)
    except (ValueError, TypeError) as e:
        raise ReviewError(f"{ENV} is not a spotreview review record ({type(e).__name__})") from None
    if served.image_set not in IMAGE_SETS or (served.run is None) == (served.bundle is None):
        raise ReviewError(f"{ENV} names neither one run nor one bundle")
    if not isinstance(served.writes, bool):
        raise ReviewError(f"{ENV} has a `writes` that is not true or false")
    return served
