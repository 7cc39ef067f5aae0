"""The spotreview Spotlight plugin: exclude, approve and play the snapshots inside a review's page.

Spotlight loads every package of the ``renumics.spotlight_plugins`` namespace in every server
it starts (``renumics/spotlight/plugin_loader.py``): ``__activate__`` adds this plugin's API
routes, and ``frontend/main.js`` is served at ``/api/plugins/spotreview/main.js`` for the page
to load. The plugin acts only in a server started by ``spotreview review``, which leaves a
record of what it serves in the server's environment (:mod:`spotreview.reviewing.served`).
Elsewhere (a plain ``spotlight.show(df)``) it adds one route saying so, and the page
registers nothing.

Routes, under ``/api/spotreview/`` (:mod:`.routes`): ``GET state``, ``GET snapshots``,
``POST exclude``, ``POST approve``.
"""

__priority__ = 2000  # after Spotlight's core plugin (0), whose routes it leaves alone


def __activate__(app) -> None:
    """Add the plugin's routes to the Spotlight app (a FastAPI app)."""
    from renumics.spotlight_plugins.spotreview.routes import make_router

    app.include_router(make_router(), prefix="/api/spotreview")
