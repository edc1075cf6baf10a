"""The table from EC2 action name to the function that carries it out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from karri.api.auth.credentials import Principal
from karri.api.ec2.instance_fragments import InstanceFragments
from karri.api.ec2.render import Prerendered, RawXml
from karri.cloud.controller import Cloud


@dataclass(frozen=True)
class Ec2Context:
    """What a handler knows about the request besides its parameters."""

    cloud: Cloud
    principal: Principal
    request_id: str
    version: str
    # A Eucalyptus-era client (SigV2 at /services/Eucalyptus: libcloud, boto 2), which
    # expects Eucalyptus's own shape for Eucalyptus's extensions even at today's version.
    eucalyptus_client: bool = False
    instance_fragments: InstanceFragments | None = None
    """This front end's rendered instances (DescribeInstances), if it keeps them."""

    @property
    def account_id(self) -> str:
        return self.principal.account_id


Handler = Callable[[Ec2Context, dict[str, Any]], dict[str, Any] | Prerendered]
ACTIONS: dict[str, Handler] = {}
INLINE: set[str] = set()
READ_ONLY: set[str] = set()


def action(
    name: str, *, inline: bool = False, read_only: bool = False
) -> Callable[[Handler], Handler]:
    """Register a handler; it runs in a worker thread and returns the output dict.

    ``inline`` handlers touch neither the database nor anything else that blocks (they
    answer from memory), so they run on the event loop and skip the hop to a thread.
    ``read_only`` handlers only read the database: on SQLite in WAL mode, where a reader
    never waits for a writer, they run on the event loop too (elsewhere in a thread).
    """

    def register(handler: Handler) -> Handler:
        ACTIONS[name] = handler
        if inline:
            INLINE.add(name)
        if read_only:
            READ_ONLY.add(name)
        return handler

    return register


RawHandler = Callable[[Ec2Context, dict[str, str]], RawXml]
EXTENSIONS: dict[str, RawHandler] = {}


def eucalyptus_action(name: str) -> Callable[[RawHandler], RawHandler]:
    """Register an action of Eucalyptus's own that botocore's EC2 model does not know.

    Its handler gets the request's raw parameters (no model to parse them by) and
    returns the answer already rendered (``RawXml``); any ``Version`` is accepted, since
    Eucalyptus's clients send their own (``eucalyptus``).
    """

    def register(handler: RawHandler) -> RawHandler:
        EXTENSIONS[name] = handler
        return handler

    return register
