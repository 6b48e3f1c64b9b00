"""Routes of another service's API: every error, from dependencies and body parsing too, in that API's shape."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

ErrorRenderer = Callable[[APIRoute, Request, Exception], Response]
"""Renders an error raised while a route of that API handled a request."""


def shaped_route(render: ErrorRenderer) -> type[APIRoute]:
    """An APIRoute class (for `APIRouter(route_class=...)`) whose errors `render` answers."""

    class ShapedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def route(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:
                    return render(self, request, exc)

            return route

    return ShapedRoute
