"""The S3 endpoint (Walrus). Until Walrus lands it answers every request NotImplemented."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from karri.api.auth.credentials import KeyStore
from karri.api.requests import new_request_id
from karri.cloud.controller import Cloud


def s3_app(cloud: Cloud, keys: KeyStore) -> Starlette:
    async def not_implemented(_request: Request) -> Response:
        request_id = new_request_id()
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>'
            "<Message>Walrus is not available yet</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        return Response(
            body, 501, media_type="application/xml", headers={"x-amz-request-id": request_id}
        )

    methods = ["GET", "PUT", "POST", "DELETE", "HEAD"]
    return Starlette(routes=[Route("/{path:path}", not_implemented, methods=methods)])
