"""IAM (``/services/Euare``) and STS (``/services/Tokens``) on the EC2 port: Query
protocol services driven by botocore's ``iam`` and ``sts`` models.

Authenticate, parse by the model, authorize (IAM: the caller's policies must allow
``iam:Action`` unless it is an account's root), run the handler in a thread, render.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from karri import policy
from karri.api.auth.credentials import KeyStore, Principal
from karri.api.ec2.model import query_model
from karri.api.ec2.query import parse_input
from karri.api.ec2.render import render_query_error, render_query_response
from karri.api.iam import actions  # registers the handlers
from karri.api.iam.dispatch import IAM, STS, Actions, QueryContext
from karri.api.iam.errors import INVALID_TOKEN, auth_error, in_iam_words
from karri.api.requests import log_request, new_request_id
from karri.api.signed_query import authenticate, parameters
from karri.cloud.controller import Cloud
from karri.errors import CloudError

log = logging.getLogger("karri.api.iam")

IAM_PATH = "/services/Euare"
STS_PATH = "/services/Tokens"


class QueryService:
    """One Query-protocol service: its model, its handlers, its authorization rule, and
    what GetSessionToken's credentials may call (AWS: no IAM call without MFA, of STS only
    AssumeRole and GetCallerIdentity)."""

    def __init__(
        self,
        cloud: Cloud,
        keys: KeyStore,
        service: str,
        registry: Actions,
        authorize: bool,
        session_token_actions: frozenset[str] = frozenset(),
    ) -> None:
        self.session_token_actions = session_token_actions
        self.cloud = cloud
        self.keys = keys
        self.service = service
        self.model = query_model(service)
        self.registry = registry
        self.authorize = authorize

    async def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        started = time.perf_counter()
        account, action, status = "", "", 200
        try:
            pairs, body = await parameters(request)
            params = dict(pairs)
            action = params.get("Action", "")
            principal = authenticate(request, self.keys, pairs, params, body, auth_error)
            account = principal.account_id
            self.keys.used(principal, self.service, "us-east-1")  # IAM's is global
            client = request.client.host if request.client else None
            context = QueryContext(self.cloud, principal, request_id, client, action)
            payload = await self._dispatch(context, params, request_id)
        except CloudError as error:
            error = in_iam_words(error)
            status = error.status
            payload = render_query_error(error.code, error.message, request_id, self.model.xmlns)
        except ClientDisconnect:
            status, payload = 499, b""
        except Exception:
            log.exception("request %s failed", request_id)
            status = 500
            payload = render_query_error(
                "InternalError",
                f"An internal error has occurred (request {request_id})",
                request_id,
                self.model.xmlns,
            )
        log_request(request_id, account, action, status, (time.perf_counter() - started) * 1000)
        return Response(
            payload,
            status_code=status,
            media_type="text/xml",
            headers={"x-amzn-RequestId": request_id},
        )

    async def _dispatch(
        self, context: QueryContext, params: dict[str, str], request_id: str
    ) -> bytes:
        action = params.get("Action")
        if not action:
            raise CloudError("MissingAction", "The request must contain the parameter Action")
        if action not in self.model.operations:
            raise CloudError("InvalidAction", f"Could not find operation {action}", 400)
        handler = self.registry.handlers.get(action)
        if handler is None:
            raise CloudError(
                "UnsupportedOperation", f"The action {action} is not supported yet.", 400
            )
        if _session_token_credentials(context.principal) and (
            action not in self.session_token_actions
        ):
            if self.service == "iam":
                raise CloudError("InvalidClientTokenId", INVALID_TOKEN, 403)
            raise CloudError("AccessDenied", f"Cannot call {action} with session credentials", 403)
        parsed: dict[str, Any] = parse_input(self.model, action, params)
        if self.authorize:
            await run_in_threadpool(
                actions.authorize_call, context, f"{self.service}:{action}", parsed
            )
        output = await run_in_threadpool(handler, context, parsed)
        return render_query_response(self.model, action, output, request_id)


def _session_token_credentials(principal: Principal) -> bool:
    """GetSessionToken's (a user's or root's temporary keys), not a role's session."""
    return principal.access_key_id.startswith("ASIA") and (
        principal.caller.type is not policy.PrincipalType.ASSUMED_ROLE
    )


def iam_service(cloud: Cloud, keys: KeyStore) -> QueryService:
    return QueryService(cloud, keys, "iam", IAM, authorize=True)


def sts_service(cloud: Cloud, keys: KeyStore) -> QueryService:
    allowed = frozenset({"AssumeRole", "GetCallerIdentity"})
    return QueryService(cloud, keys, "sts", STS, authorize=False, session_token_actions=allowed)


__all__ = ["IAM_PATH", "STS_PATH", "Principal", "QueryService", "iam_service", "sts_service"]
