"""`update_routes`: one endpoint that is both the `PUT` and the `PATCH` of a path."""

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter


def update_routes(
    router: APIRouter, path: str, resource: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated endpoint as both `PUT` (`replace_<resource>`) and `PATCH`
    (`patch_<resource>`) of `path`: the contract gives them one meaning (only the fields sent
    change), so they are one endpoint with two operations. `options` go to both."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        operations = {
            router.put: (
                f"replace_{resource}",
                f"Update a {resource}: only the fields sent change.",
            ),
            router.patch: (f"patch_{resource}", f"Update a {resource} with a JSON merge patch."),
        }
        for method, (name, summary) in operations.items():
            method(path, name=name, operation_id=name, description=summary, **options)(endpoint)
        return endpoint

    return register
