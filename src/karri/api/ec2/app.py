"""The EC2 Query endpoint: authenticate, parse by the model, dispatch, render.

It answers at ``/`` and at Eucalyptus's ``/services/compute`` and
``/services/Eucalyptus``, for GET and POST, signed with SigV4 or SigV2.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from karri import policy
from karri.api.auth import sigv2
from karri.api.auth.authorizer import NO_POLICIES, PolicySource
from karri.api.auth.credentials import KeyStore, Principal
from karri.api.auth.errors import (
    AuthError,
    ExpiredToken,
    InvalidToken,
    MissingAuthentication,
    RequestExpired,
    SignatureMismatch,
    UnknownAccessKey,
    WrongScope,
)
from karri.api.ec2 import actions  # noqa: F401  (registers the handlers)
from karri.api.ec2.authorize import Ec2Authorization
from karri.api.ec2.dispatch import ACTIONS, EXTENSIONS, INLINE, READ_ONLY, Ec2Context
from karri.api.ec2.instance_fragments import InstanceFragments, InstanceXml
from karri.api.ec2.model import API_VERSION, ec2_model
from karri.api.ec2.query import parse_input
from karri.api.ec2.render import RawXml, render_error, render_response
from karri.api.requests import log_request, new_request_id
from karri.api.signed_query import authenticate, parameters
from karri.cloud.controller import Cloud
from karri.errors import CloudError
from karri.serving import closing_answer

log = logging.getLogger("karri.api.ec2")

EUCALYPTUS_PATH = "/services/Eucalyptus"
EC2_PATHS = ("/", "/services/compute", EUCALYPTUS_PATH, "/services/Empyrean")
VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def auth_error(error: AuthError) -> CloudError:
    """EC2's codes for authentication failures."""
    if isinstance(error, MissingAuthentication):
        return CloudError("MissingAuthenticationToken", error.message, 401)
    if isinstance(error, RequestExpired | ExpiredToken):
        return CloudError("RequestExpired", error.message, 400)
    if isinstance(error, WrongScope) and error.wrong_service:
        return CloudError(
            "SignatureDoesNotMatch",
            f"Credential should be scoped to correct service: '{error.service}'. ",
            403,
        )
    if isinstance(error, UnknownAccessKey | SignatureMismatch | InvalidToken | WrongScope):
        return CloudError(
            "AuthFailure", "AWS was not able to validate the provided access credentials", 401
        )
    return CloudError("IncompleteSignature", error.message, 400)


def xml_response(payload: bytes, status: int, request_id: str) -> Response:
    return Response(
        payload,
        status_code=status,
        media_type="text/xml;charset=UTF-8",
        headers={"x-amzn-RequestId": request_id},
    )


def refusal(code: str, message: str) -> bytes:
    """The answer to a request refused by the HTTP layer (``serving.BoundedHttpProtocol``)."""
    request_id = new_request_id()
    body = render_error(code, message, request_id)
    headers = {"x-amzn-RequestId": request_id, "content-type": "text/xml;charset=UTF-8"}
    return closing_answer(400, "Bad Request", headers, body)


def error_response(error: CloudError) -> Response:
    request_id = new_request_id()
    return xml_response(
        render_error(error.code, error.message, request_id), error.status, request_id
    )


class Ec2Api:
    """``policies``: the identity policies of callers that are not an account's root."""

    def __init__(self, cloud: Cloud, keys: KeyStore, policies: PolicySource = NO_POLICIES) -> None:
        self.cloud = cloud
        self.keys = keys
        self.endpoint = (cloud.settings.region, "ec2")  # what SigV4 scopes must name
        lookups = {
            "security-group": cloud.groups.ids_by_name,
            "elastic-ip": cloud.addresses.ids_by_public_ip,
            "key-pair": cloud.keypairs.names_by_id,
        }
        self.authorization = Ec2Authorization(
            cloud.settings.region,
            policies,
            cloud.tags,
            lookups,
            cloud.instances.types_of,
            profile_roles=cloud.profiles.role_arns,
        )
        self.model = ec2_model()
        self.instance_fragments = InstanceFragments(InstanceXml(self.model))
        # As many handler threads as the database pool has connections: with more, every
        # request past the pool's size opens (and closes) a connection of its own.
        size = getattr(cloud.db.engine.pool, "size", lambda: 8)()
        self._workers = ThreadPoolExecutor(max_workers=size, thread_name_prefix="ec2-handler")
        # A thread hop costs more than a SQLite read, and the handler thread and the event
        # loop then fight over the GIL: reads run on the loop where they never wait.
        self._on_loop = INLINE | (READ_ONLY if cloud.db.engine.dialect.name == "sqlite" else set())

    async def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        started = time.perf_counter()
        account, action = "", ""
        try:
            pairs, body = await parameters(request)
            params = dict(pairs)
            action = params.get("Action", "")
            principal = authenticate(
                request, self.keys, pairs, params, body, auth_error, self.endpoint
            )
            account = principal.account_id
            self.keys.used(principal, "ec2", self.cloud.settings.region)
            path = request.scope["path"].rstrip("/")
            eucalyptus = path == EUCALYPTUS_PATH and sigv2.is_sigv2(params)
            status, payload = (
                200,
                await self._dispatch(principal, params, request_id, eucalyptus, request),
            )
        except CloudError as error:
            status, payload = error.status, render_error(error.code, error.message, request_id)
        except ClientDisconnect:  # gone before its body ended: nobody to answer, no fault
            status, payload = 499, b""
        except Exception:
            log.exception("request %s failed", request_id)
            status = 500
            payload = render_error(
                "InternalError",
                f"An internal error has occurred (request {request_id})",
                request_id,
            )
        log_request(request_id, account, action, status, (time.perf_counter() - started) * 1000)
        return xml_response(payload, status, request_id)

    async def _dispatch(
        self,
        principal: Principal,
        params: dict[str, str],
        request_id: str,
        eucalyptus: bool,
        request: Request,
    ) -> bytes:
        action = params.get("Action")
        if not action:
            raise CloudError("MissingAction", "The request must contain the parameter Action")
        version = params.get("Version") or API_VERSION
        extension = EXTENSIONS.get(action)
        if extension is not None and action not in self.model.operations:
            if not principal.is_root:
                await self._authorize(principal, action, {}, request)
            context = Ec2Context(self.cloud, principal, request_id, version)
            return (await run_in_threadpool(extension, context, params)).render(request_id)
        if not VERSION.match(version):
            raise CloudError(
                "NoSuchVersion", f"The requested version ({version}) of service EC2 does not exist"
            )
        if action not in self.model.operations:
            raise CloudError(
                "InvalidAction", f"The action {action} is not valid for this web service."
            )
        handler = ACTIONS.get(action)
        if handler is None:
            raise CloudError("UnsupportedOperation", f"The action {action} is not supported yet.")
        parsed: dict[str, Any] = parse_input(self.model, action, params)
        dry_run = parsed.pop("DryRun", False)
        if not principal.is_root:  # the account's own keys have every right: nothing to ask
            await self._authorize(principal, action, parsed, request)
        if dry_run:
            raise CloudError(
                "DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412
            )
        context = Ec2Context(
            self.cloud, principal, request_id, version, eucalyptus, self.instance_fragments
        )
        if action in self._on_loop:
            output = handler(context, parsed)
        else:
            output = await asyncio.get_running_loop().run_in_executor(
                self._workers, contextvars.copy_context().run, handler, context, parsed
            )
        if isinstance(output, RawXml):
            return output.render(request_id)
        return render_response(self.model, action, output, request_id, version)

    async def _authorize(
        self, principal: Principal, action: str, parsed: dict[str, Any], request: Request
    ) -> None:
        """UnauthorizedOperation unless the caller's policies allow the call. Calls whose
        check reads the database (tags, ids for names) are checked off the event loop."""
        client = request.scope.get("client")
        environment = policy.environment_keys(
            source_ip=client[0] if client else None,
            secure_transport=request.scope.get("scheme") == "https",
            region=self.cloud.settings.region,
        )
        authorization = self.authorization
        if not authorization.reads_database(action):
            authorization.check(principal, action, parsed, environment)
            return
        await asyncio.get_running_loop().run_in_executor(
            self._workers, authorization.check, principal, action, parsed, environment
        )
