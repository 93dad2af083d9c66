"""`/docs` (Swagger UI) and `/redoc` with no internet access: FastAPI's "Self-Hosting" recipe,
with the assets of the pinned `fastapi-offline` package (only its files, not its app factory)."""

from importlib.resources import files

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/static/docs"
# ReDoc 2's bundle always shows a footer logo from cdn.redoc.ly, which the pages' policy
# refuses and which has no option to drop: the bundle is served with that logo replaced by
# the service's own icon, relative to the /redoc page.
REDOC_JS_URL = "/static/redoc.js"
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
# Nothing from another origin, whatever a bundle may try.
# Inline: FastAPI's templates and ReDoc's styles; blob: ReDoc's search worker; data: icons.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; base-uri 'self'; form-action 'self'"
)


def install_offline_docs(app: FastAPI) -> None:
    """Mount the docs assets and add `/docs`, its OAuth2 redirect and `/redoc` to `app`."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url
    # Swagger UI's validator badge would call validator.swagger.io: switch it off explicitly.
    swagger_ui_parameters = {"validatorUrl": None, **(app.swagger_ui_parameters or {})}
    app.mount(ASSETS_URL, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")
    bundle = files("fastapi_offline").joinpath("static", "redoc.standalone.js")
    redoc_js = bundle.read_bytes().replace(_REDOC_LOGO, f"{ASSETS_URL[1:]}/favicon.png".encode())

    @app.get(REDOC_JS_URL, include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(redoc_js, media_type="text/javascript")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui_html(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # a proxy's prefix
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

    @app.get("/redoc", include_in_schema=False)
    async def redoc_html(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _same_origin_only(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=root + REDOC_JS_URL,
                redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page
