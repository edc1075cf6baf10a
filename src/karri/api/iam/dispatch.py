"""The IAM and STS action tables, and what a handler knows besides its parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from karri.api.auth.credentials import Principal
from karri.cloud.controller import Cloud


@dataclass(frozen=True)
class QueryContext:
    cloud: Cloud
    principal: Principal
    request_id: str
    source_ip: str | None = None
    action: str = ""

    @property
    def account_id(self) -> str:
        return self.principal.account_id


Handler = Callable[[QueryContext, dict[str, Any]], dict[str, Any]]


class Actions:
    """One service's handlers by action name."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def __call__(self, name: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.handlers[name] = handler
            return handler

        return register


IAM = Actions()
STS = Actions()
