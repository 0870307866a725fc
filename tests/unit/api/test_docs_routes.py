"""/docs renders the OpenAPI document with Swagger UI, every file it loads served by BCS from the
swagger-ui-bundle package (tests/e2e/test_docs_page.py renders it in a browser)."""

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from quart.typing import TestClientProtocol as Client
from swagger_ui_bundle import swagger_ui_path

from batch_conductor_service.api.docs_routes import ASSETS


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


def references(page: str) -> list[str]:
    parser = _References()
    parser.feed(page)
    return parser.urls


async def test_the_page_loads_only_files_the_service_serves(client: Client) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    urls = references(await response.get_data(as_text=True))
    assert {urlsplit(url).path.rsplit("/", 1)[1] for url in urls} == {*ASSETS, "start.js"}
    for url in urls:
        resolved = urlsplit(urljoin("http://bcs.internal/docs", url))
        assert resolved.netloc == "bcs.internal", url
        served = await client.get(resolved.path)
        assert served.status_code == 200, url
        assert len(await served.get_data()) > 0, url


@pytest.mark.parametrize(
    ("asset", "mimetype"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("favicon-32x32.png", "image/png"),
    ],
)
async def test_each_asset_is_the_packaged_file(client: Client, asset: str, mimetype: str) -> None:
    response = await client.get(f"/docs/{asset}")
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert await response.get_data() == (swagger_ui_path / asset).read_bytes()


async def test_the_page_starts_swagger_ui_on_the_services_own_document(client: Client) -> None:
    response = await client.get("/docs/start.js")
    assert response.mimetype == "text/javascript"
    script = await response.get_data(as_text=True)
    assert 'url: "openapi.json"' in script
    assert "SwaggerUIBundle(" in script


@pytest.mark.parametrize(
    "path",
    ["/docs/index.html", "/docs/swagger-initializer.js", "/docs/../pyproject.toml", "/docs/"],
)
async def test_nothing_else_of_the_bundle_is_served(client: Client, path: str) -> None:
    # The bundle's own index.html and initializer point at an example API on the internet.
    response = await client.get(path)
    assert response.status_code == 404
