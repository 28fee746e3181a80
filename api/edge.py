"""Answers the edge gives before a route runs, in the API's own shape (JSON with `detail`)."""

from __future__ import annotations

import json

from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class TooLargeAsJson:
    """Starlette's body limit answers a plain-text "Content Too Large"; clients of this API
    read `detail`, so say it there, with the limit of the route that refused it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rewriting = False

        async def send_json(message: Message) -> None:
            nonlocal rewriting
            if message["type"] == "http.response.start" and message["status"] == 413:
                headers = dict(message.get("headers", []))
                rewriting = headers.get(b"content-type", b"").startswith(b"text/plain")
                if rewriting:
                    limit = scope.get(MAX_BODY_SIZE_SCOPE_KEY)
                    detail = (
                        f"the request body is over the {limit} bytes this route takes"
                        if limit
                        else "the request body is too large"
                    )
                    body = json.dumps({"detail": detail}).encode()
                    message = {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                    await send(message)
                    await send({"type": "http.response.body", "body": body})
                    return
            if rewriting:
                return  # the plain-text body, already replaced
            await send(message)

        await self.app(scope, receive, send_json)
