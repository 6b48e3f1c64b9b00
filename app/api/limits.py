"""ASGI middleware that refuses request bodies past a byte limit while they stream in."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import UploadTooLarge


class BodySizeLimit:
    """Stops reading a request body once it passes `limit` bytes: 413 before the app sees it all."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        # A declared length past the limit is refused at the first read, before any body is taken in.
        received = int(declared) if declared.isdigit() and int(declared) > limit else 0

        async def limited_receive() -> Message:
            nonlocal received
            if received > limit:
                raise UploadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise UploadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
            return message

        await self.app(scope, limited_receive, send)
