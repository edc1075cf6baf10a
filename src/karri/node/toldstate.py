"""What a node was last told of each VPC, kept in its data dir (issue 19, step 7).

A VPC's namespace is set up, or adopted after a restart, with its security groups, ACLs,
routes, DHCP options, resolver, overlay and the subnets that reach outside in force from
the first moment (``VpcNetwork.start``). The cloud's own node is told them before it
starts (``Reconciler.start``); a joined node (`karri node`) starts before the cloud can
reach it, and after a restart it may wait long for the cloud (which notices the node
only at its next pass, or is down itself). Adopted with nothing, its guests would lose
their groups (no ingress), ACLs and overlay until then. So the node keeps what it was told
of each VPC here (``<node>/told/<vpc>.json``, the contract's JSON, ``codec``) and adopts
its namespaces with it; the cloud tells it everything again when it connects, and what it
tells wins.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from karri.node.acls import SubnetAcl
from karri.node.codec import CodecError, decode, encode
from karri.node.dhcp import DhcpOptions
from karri.node.dns import Resolver
from karri.node.firewall import GroupRules
from karri.node.overlay import Overlay
from karri.node.subnetroutes import VpcRoutes

log = logging.getLogger("karri.node")

KINDS: dict[str, Any] = {
    "groups": tuple[GroupRules, ...],
    "internet": tuple[tuple[str, ...] | None, str | None],  # subnets out, masquerade
    "acls": tuple[SubnetAcl, ...] | None,
    "dhcp": DhcpOptions,
    "resolver": Resolver | None,
    "routes": VpcRoutes,
    "overlay": Overlay,
}
"""What is kept of a VPC, by name, and its type."""
VPC_ID = re.compile(r"vpc-[0-9a-z-]{1,40}")  # the cloud's ids, and the one-host VPC's


class ToldState:
    """Each VPC's last told state, a JSON file per VPC under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, vpc_id: str, state: Mapping[str, Any]) -> None:
        """Keep ``state`` (kind -> value, of ``KINDS``) as the VPC's, replacing what was."""
        data = {kind: encode(value, KINDS[kind]) for kind, value in state.items()}
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(vpc_id)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    def load(self, vpc_id: str) -> dict[str, Any]:
        """What was kept of the VPC (nothing if nothing was, or it cannot be read: the
        namespace is then adopted as if never told, until the cloud tells it)."""
        path = self._path(vpc_id)
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise CodecError("$: not an object")
            return {k: decode(v, KINDS[k]) for k, v in data.items() if k in KINDS}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:  # CodecError is a ValueError
            log.warning("%s: what it was told is unreadable (%s): not kept", vpc_id, error)
            return {}

    def forget(self, vpc_id: str) -> None:
        self._path(vpc_id).unlink(missing_ok=True)

    def vpcs(self) -> set[str]:
        """The VPCs something is kept of."""
        if not self.directory.is_dir():
            return set()
        return {p.stem for p in self.directory.glob("*.json") if VPC_ID.fullmatch(p.stem)}

    def _path(self, vpc_id: str) -> Path:
        if not VPC_ID.fullmatch(vpc_id):
            raise ValueError(f"malformed VPC id {vpc_id!r}")
        return self.directory / f"{vpc_id}.json"
