"""The ASGI applications of one `karri up`: the EC2 port and the S3 port."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from karri.api.auth import messages
from karri.api.auth.authorizer import NO_POLICIES, PolicySource
from karri.api.auth.credentials import KeyStore, account_keys
from karri.api.ec2.app import EC2_PATHS, Ec2Api, error_response
from karri.api.iam.app import IAM_PATH, STS_PATH, iam_service, sts_service
from karri.api.nodes import join_route
from karri.api.s3.app import EUCALYPTUS_PREFIXES, objectstorage_app, s3_app
from karri.cloud.controller import Cloud
from karri.cloud.systemkey import WithSystemKey
from karri.errors import CloudError


def ec2_app(
    cloud: Cloud, keys: KeyStore, health: dict, policies: PolicySource = NO_POLICIES
) -> ASGIApp:
    api = Ec2Api(cloud, keys, policies)

    async def healthz(_request: Request) -> JSONResponse:
        """``health`` with its live values (callables, such as the node's summary) read now."""
        return JSONResponse({k: v() if callable(v) else v for k, v in health.items()})

    routes = [
        Route("/karri/health", healthz, methods=["GET"]),
        join_route(cloud.nodes, cloud.settings.node_url),
    ]
    for path, service in (
        (IAM_PATH, iam_service(cloud, keys)),
        (STS_PATH, sts_service(cloud, keys)),
    ):
        routes += [Route(p, service.handle, methods=["GET", "POST"]) for p in (path, path + "/")]
    # Eucalyptus's S3_URL paths
    walrus = objectstorage_app(cloud.walrus, keys, policies, cloud.settings.region)
    routes += [Mount(prefix, app=walrus) for prefix in EUCALYPTUS_PREFIXES]
    for path in EC2_PATHS:
        routes.append(Route(path, api.handle, methods=["GET", "POST"]))
        if path != "/":
            routes.append(Route(path + "/", api.handle, methods=["GET", "POST"]))

    async def http_error(_request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        if status == 404:
            return error_response(CloudError("InvalidAction", "No such service path", 404))
        if status == 405:
            return error_response(CloudError("InvalidAction", "Method not allowed", 405))
        return error_response(CloudError("InternalError", "An internal error has occurred", 500))

    framework = Starlette(
        routes=routes, exception_handlers={HTTPException: http_error, Exception: http_error}
    )
    # The EC2 calls themselves skip Starlette's routing and middleware: Ec2Api.handle turns
    # every failure into an EC2 error document already, and this is the hot path.
    hot = {p for path in EC2_PATHS for p in (path, path.rstrip("/") + "/")}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in hot and scope["method"] in ("GET", "POST"):
            response = await api.handle(Request(scope, receive))
            await response(scope, receive, send)
        else:
            await framework(scope, receive, send)

    return app


def build_apps(cloud: Cloud, health: dict) -> tuple[ASGIApp, ASGIApp]:
    finder = WithSystemKey(cloud.iam.keys, cloud.system_key)
    keys = account_keys(finder, cloud.iam.generation, cloud.iam.access_keys.note_use)
    cloud.iam.key_listeners.append(keys.forget)
    messages.use_key_file(cloud.settings.data_dir)
    # The identity policies of IAM users and role sessions; the account's root keys are
    # never evaluated.
    policies: PolicySource = cloud.iam
    return ec2_app(cloud, keys, health, policies), s3_app(
        cloud.walrus, keys, cloud.settings.s3_domain, policies, cloud.settings.region
    )
