"""`/docs` (Swagger UI) and `/redoc` that work with no internet access.

FastAPI's default pages load their JavaScript and CSS from a CDN, their favicon from FastAPI's
site and ReDoc's fonts from Google. This follows FastAPI's "Custom Docs UI Static Assets
(Self-Hosting)" recipe instead: every asset comes from the pinned `fastapi-offline` package
(Swagger UI 5.32.6 and ReDoc 2.5.3, as files), served by this service.
"""

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/static/docs"
# Only the package's files are used (not its `FastAPIOffline` app factory), so the routes below
# stay FastAPI's documented ones.
ASSETS_PACKAGE = ("fastapi_offline", "static")
# The bundles reach out on their own too (ReDoc 2 always loads its footer logo from
# cdn.redoc.ly), so the pages tell the browser to load nothing from any other origin. The inline
# script and styles are FastAPI's page templates and ReDoc's styled-components; ReDoc runs its
# search index in a blob: worker; Swagger UI's icons are data: images.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "worker-src 'self' blob:",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)


def install_offline_docs(app: FastAPI) -> None:
    """Mount the docs assets and add `/docs`, its OAuth2 redirect and `/redoc` to `app`."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url
    # Swagger UI's validator badge would call validator.swagger.io: switch it off explicitly.
    swagger_ui_parameters = {"validatorUrl": None, **(app.swagger_ui_parameters or {})}
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui_html(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return _same_origin_only(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                oauth2_redirect_url=root + oauth2_redirect_url if oauth2_redirect_url else None,
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=swagger_ui_parameters,
            )
        )

    if oauth2_redirect_url:

        @app.get(oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc_html(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return _same_origin_only(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def _root_path(request: Request) -> str:
    """The prefix a proxy mounts the app under, as FastAPI's own docs routes use it."""
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/")
