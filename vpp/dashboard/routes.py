"""Routes of the dashboard: the page, its script and style, and the vendored plotly.js."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).parent / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}


def plotly_js() -> Path:
    """plotly.min.js from the installed ``plotly`` package."""
    import plotly

    p = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not p.is_file():
        raise FileNotFoundError(f"{p} missing: reinstall the plotly package")
    return p


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=_TYPES[".html"], headers={"Cache-Control": "no-cache"})


@router.get("/static/plotly.min.js")
def plotly_file() -> FileResponse:
    try:
        path = plotly_js()
    except FileNotFoundError as e:
        raise HTTPException(404, str(e)) from None
    return FileResponse(path, media_type=_TYPES[".js"], headers={"Cache-Control": "public, max-age=86400"})


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in _TYPES or not path.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
