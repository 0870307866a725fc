"""`GET /docs`: the OpenAPI document rendered by Swagger UI, whose script and style the service
serves itself from the swagger-ui-bundle package, so the page loads nothing from elsewhere."""

from quart import Blueprint, Response, abort, send_from_directory
from swagger_ui_bundle import swagger_ui_path

docs_bp = Blueprint("docs", __name__)

# Only what the page loads: the bundle's own index.html would fetch an example API from the web.
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})

# Relative URLs, so that the page works behind a proxy that serves BCS under a path prefix.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Batch Conductor Service API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/start.js"></script>
</body>
</html>
"""

START = """window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"});
"""

# Same origin only: the browser itself refuses anything the page might load from elsewhere.
# Swagger UI sets inline styles and draws some icons as data: images.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@docs_bp.get("/docs")
async def docs() -> Response:
    return Response(
        PAGE,
        content_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


@docs_bp.get("/docs/start.js")
async def start_script() -> Response:
    return Response(START, content_type="text/javascript; charset=utf-8")


@docs_bp.get("/docs/<asset>")
async def asset(asset: str) -> Response:
    if asset not in ASSETS:
        abort(404)
    return await send_from_directory(swagger_ui_path, asset)
