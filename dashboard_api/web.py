"""The web app: one HTML shell and its scripts, styles and catalogues, served by the API.

Everything the pages load is in ``dashboard_api/static`` and ships in the wheel, so a
clinic intranet with no internet runs the whole app. The shell is the same document for
every page: the script reads the URL's fragment (``#/patients``, ``#/patient/ID``,
``#/portal``) and renders that page from the API. ``/login/sms`` is the page the SMS login
link opens; its token is in the fragment, which the browser never sends to the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR: Final = Path(__file__).parent / "static"
"""The shipped assets (package data)."""

SHELL_PATHS: Final = ("/", "/login/sms")
"""Paths answered with the HTML shell; the SMS link's path is fixed by the auth route."""


def mount_web(app: FastAPI) -> None:
    """Serve the shell at :data:`SHELL_PATHS` and the assets under ``/static``."""
    shell = STATIC_DIR / "index.html"

    async def index() -> FileResponse:
        # no-cache: a new release's shell (and so its asset list) is picked up at once.
        return FileResponse(shell, media_type="text/html", headers={"Cache-Control": "no-cache"})

    for path in SHELL_PATHS:
        app.add_api_route(path, index, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
