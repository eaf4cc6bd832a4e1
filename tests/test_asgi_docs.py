"""``/docs``: Swagger UI from the package's own files, working where the app is mounted as a sub-app."""
from urllib.parse import urljoin

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_support import make_app

pytestmark = pytest.mark.anyio


async def test_docs_page_and_its_assets_resolve_under_a_mount(tmp_path):
    outer = Starlette(routes=[Mount("/astrodash", app=make_app(tmp_path))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=outer), base_url="http://testserver") as c:
        page = await c.get("/astrodash/docs")
        assert page.status_code == 200
        # every relative URL of the page, resolved as a browser would against the page's own URL
        for ref, kind in (("docs/swagger-ui-bundle.js", "javascript"), ("docs/swagger-ui.css", "css"),
                          ("openapi.json", "json")):
            assert ref in page.text
            r = await c.get(urljoin(str(page.url), ref))
            assert r.status_code == 200 and kind in r.headers["content-type"], (ref, r.status_code)
        slash = await c.get("/astrodash/docs/")  # relative URLs would resolve one level too deep there
        assert slash.status_code in (307, 308) and slash.headers["location"].endswith("/astrodash/docs")
        assert (await c.get("/astrodash/docs/../../etc/passwd")).status_code == 404
        assert (await c.get("/astrodash/docs/LICENSE")).status_code == 404
