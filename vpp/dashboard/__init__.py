"""Operations dashboard: one static page (no build step) served by the API app at ``/``.

The page reads the status routes (:mod:`vpp.api.routes.status`) with the API key the user
enters (kept in ``sessionStorage``) and follows ``/api/v1/stream`` (server-sent events read
with ``fetch`` so the key travels in a header, not the URL). Charts use the plotly.js file
shipped by the ``plotly`` Python package, served from here (works offline).
"""
