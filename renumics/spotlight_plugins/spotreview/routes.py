"""The plugin's API routes (FastAPI), under ``/api/spotreview/``: parse, call :class:`.page.Page`, answer.

* ``GET state``: ``{"active": false}`` in a server that no ``spotreview review`` started (and
  nothing else is routed there); else the app bar's state (:meth:`.page.Page.state`).
* ``GET snapshots``: the player's data (:func:`.snapshots.snapshot_data`).
* ``GET frontend/NAME.js``: the page's modules beside ``main.js`` (which Spotlight serves
  itself), loaded by ``main.js`` once ``state`` says a review is served.
* ``POST exclude`` ``{"ids": [...], "exclude": true|false, "reason": "..."}`` and
  ``POST approve`` ``{"by": "..."}``: JSON bodies only (``Content-Type: application/json``,
  which a cross-site form cannot send), at most :data:`MAX_BODY` bytes, and no request whose
  ``Origin`` is another site.

Errors answer ``{"detail": "one line"}``: 400 for a request the run does not allow, 403 for a
refused write, 413/415 for a body too large or not JSON; nothing is written then.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from spotreview.errors import SpotreviewError, first_line

logger = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024  # bytes: ids of a few hundred thousand selected images
FRONTEND = Path(__file__).parent / "frontend"
_MODULE = re.compile(r"[a-z]+\.js")


class _Refused(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def _served():
    """The review record of this server, or None (and why, when a record is unreadable)."""
    import os

    from spotreview.reviewing.served import ENV

    if not os.environ.get(ENV):
        return None, None
    from spotreview.reviewing.served import served_from_env

    try:
        return served_from_env(), None
    except SpotreviewError as e:
        logger.warning("spotreview plugin inactive: %s", e)
        return None, str(e)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # not sent by browsers for same-origin GETs, nor by scripts
        return True
    return urlsplit(origin).netloc == request.headers.get("host")


async def _json_body(request: Request):
    if not _same_origin(request):
        raise _Refused(403, "requests from another site are refused")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise _Refused(415, f"the request must be JSON (Content-Type: application/json), got {kind or 'none'}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise _Refused(413, f"the request is larger than {MAX_BODY // 2**20} MiB")
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise _Refused(400, f"the request is not valid JSON ({type(e).__name__})") from None


async def _answer(call, *args) -> JSONResponse:
    """``call(*args)`` in a worker thread (it reads and writes files under locks), as JSON;
    a library error as one line."""
    from renumics.spotlight_plugins.spotreview.page import WritesRefused

    try:
        return JSONResponse(await run_in_threadpool(call, *args))
    except WritesRefused as e:
        return JSONResponse({"detail": first_line(e)}, status_code=403)
    except SpotreviewError as e:
        return JSONResponse({"detail": first_line(e)}, status_code=400)


def make_router() -> APIRouter:
    """The routes of this server: one inert ``state`` route unless a review started it."""
    router = APIRouter(tags=["spotreview"])
    served, problem = _served()

    if served is None:

        @router.get("/state")
        def inert_state() -> dict:
            return {"active": False, "problem": problem}

        return router

    from renumics.spotlight_plugins.spotreview.page import Page
    from renumics.spotlight_plugins.spotreview.snapshots import snapshot_data

    page = Page(served)

    @router.get("/state")
    async def state() -> JSONResponse:
        return await _answer(page.state)

    @router.get("/snapshots")
    async def snapshots() -> JSONResponse:
        return await _answer(snapshot_data, served)

    @router.get("/frontend/{name}")
    async def frontend(name: str):
        path = FRONTEND / name
        if not _MODULE.fullmatch(name) or name == "main.js" or not path.is_file():
            return JSONResponse({"detail": f"no page module {name!r}"}, status_code=404)
        return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    async def write(request: Request, action) -> JSONResponse:
        try:
            body = await _json_body(request)
        except _Refused as e:
            return JSONResponse({"detail": e.detail}, status_code=e.status)
        return await _answer(action, body)

    @router.post("/exclude")
    async def exclude(request: Request) -> JSONResponse:
        return await write(request, page.exclude)

    @router.post("/approve")
    async def approve(request: Request) -> JSONResponse:
        return await write(request, page.approve)

    return router
