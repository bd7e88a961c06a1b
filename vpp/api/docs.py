"""``GET /api/v1/docs``: the API reference, served by the site itself.

FastAPI's Swagger UI and ReDoc pages load their scripts from a third-party CDN (a supply-chain
and privacy leak on an operator's browser, and blocked by the content security policy).
This page is ours: plain HTML and one script, ``/static/apidocs.js``, that renders
``/api/v1/openapi.json`` (operations, the roles allowed from the access table, parameters,
request and response schemas). Served only with ``api.docs: true``; production configs turn
it off (the OpenAPI document stays available).
"""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>VPP site API</title>
<link rel="stylesheet" href="/static/apidocs.css">
</head>
<body>
<main id="apidocs" data-spec="/api/v1/openapi.json">
<h1>VPP site API</h1>
<p id="apidocs-status">loading /api/v1/openapi.json …</p>
</main>
<script src="/static/apidocs.js"></script>
</body>
</html>
"""


@router.get("/api/v1/docs", response_class=HTMLResponse)
def api_docs() -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-cache"})
