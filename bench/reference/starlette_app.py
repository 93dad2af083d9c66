"""Reference: bare Starlette returning constants — the floor of the framework stack (no database).

Same paths as the service, so the same wrk scripts drive it. Run: uvicorn app:app
"""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PRODUCT = (
    b'{"id":1,"sku":null,"name":"Red T-shirt","description":null,"price":19.99,"quantity":10,'
    b'"created_at":"2026-01-01T00:00:01Z","updated_at":"2026-01-01T00:00:01Z","version":1,'
    b'"category_id":2}'
)
EXPANDED = PRODUCT[:-1] + b',"category":{"id":2,"name":"Category 2"}}'
PAGE = b"[" + b",".join([PRODUCT] * 100) + b"]"
EXPANDED_PAGE = b"[" + b",".join([EXPANDED] * 100) + b"]"


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status, media_type="application/json")


async def products(request: Request) -> Response:
    if request.method == "POST":
        await request.body()
        return _json(PRODUCT, 201)
    return _json(EXPANDED_PAGE if "expand" in request.query_params else PAGE)


async def product(request: Request) -> Response:
    if request.method == "PATCH":
        await request.body()
    return _json(PRODUCT)


app = Starlette(
    routes=[
        Route("/products", products, methods=["GET", "POST"]),
        Route("/products/{product_id:int}", product, methods=["GET", "PATCH"]),
    ]
)
