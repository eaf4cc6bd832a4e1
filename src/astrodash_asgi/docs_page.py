"""``GET /docs``: the OpenAPI document browsed in Swagger UI, served from files shipped with the package
(``static/swagger-ui``, swagger-ui-dist, Apache-2.0) so the page works without reaching any CDN."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

STATIC = resources.files("astrodash_asgi") / "static" / "swagger-ui"
ASSETS = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css"}

# Relative URLs throughout, so the page works where the app is mounted as a sub-app.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>astrodash HTTP API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true});
</script>
</body>
</html>
"""


async def docs(request: Request) -> Response:
    return HTMLResponse(PAGE)


@lru_cache(maxsize=len(ASSETS))
def _asset_bytes(name: str) -> bytes:
    return STATIC.joinpath(name).read_bytes()  # read once: 1.7 MB of script is not re-read per request


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ASSETS:
        return PlainTextResponse(f"no such file: {name}", status_code=404)
    return Response(_asset_bytes(name), media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})
