"""Routes take their dependencies from the app's container itself, with no request scope.

Every provider is app-scoped (wiring/providers.py, wiring/store_providers.py), so the request
scope quart-dishka enters around every request (a child container made, entered, closed) held
nothing; it was a measurable part of `/define`'s cost. A provider given a narrower scope fails
its first request loudly (dishka: no such scope), not quietly.
"""

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from dishka import AsyncContainer
from dishka.integrations.base import wrap_injection
from quart import Quart, current_app

P = ParamSpec("P")
T = TypeVar("T")

CONTAINER_EXTENSION = "bcs_container"


def attach_container(app: Quart, container: AsyncContainer) -> None:
    app.extensions[CONTAINER_EXTENSION] = container


def attached_container(app: Quart) -> AsyncContainer | None:
    container: AsyncContainer | None = app.extensions.get(CONTAINER_EXTENSION)
    return container


def inject(func: Callable[P, T]) -> Callable[P, T]:
    """Fills the route's `FromDishka[...]` parameters from the running app's container."""
    return wrap_injection(
        func=func,
        is_async=True,
        container_getter=lambda _args, _kwargs: current_app.extensions[CONTAINER_EXTENSION],
    )
