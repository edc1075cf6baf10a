"""An account's own network interfaces, by AWS's rules: CreateNetworkInterface,
DeleteNetworkInterface, Attach/DetachNetworkInterface, Modify/Describe/Reset
NetworkInterfaceAttribute, Assign/UnassignPrivateIpAddresses. One ``write_session`` per
call, taken with the allocation lock when addresses are chosen.

An interface attached to an instance counts against its type's limits
(``interface_limits.py``); the primary one (device index 0) is the instance's: it is never
detached, its groups are the instance's (a change of them goes to ``set_instance_groups``).
Which instance may take an interface is asked of ``InstanceLookup``, so this module does
not read the instances' table. An attachment to a running instance is ``attaching``, a
detachment ``detaching``, until the node has hot-plugged or the guest released the NIC
(``instances/nic_settling.py``, run by the reconciler, which ``changed`` tells)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from karri.cloud.instances.groups import SecurityGroup, stored
from karri.cloud.network.interface_limits import MOST_ADDRESSES, limits_of
from karri.cloud.network.interface_routes import source_dest_check
from karri.cloud.network.interface_rules import (
    AttachTarget,
    add_secondaries,
    attach,
    checked_description,
    in_use,
    make_interface,
    requested_addresses,
)
from karri.cloud.network.interfaces import (
    INTERFACE,
    Interfaces,
    InterfaceView,
    detach_rows,
    disassociate,
    forget,
    secondaries,
)
from karri.cloud.network.models import InterfaceAddress, NetworkInterface
from karri.cloud.network.vpc_changes import owned
from karri.cloud.network.vpcs import SUBNET
from karri.errors import CloudError, invalid_combination, invalid_value, missing_parameter

ATTRIBUTES = ("description", "groupSet", "sourceDestCheck", "attachment")


class InstanceLookup(Protocol):
    def __call__(self, session: Session, account_id: str, instance_id: str) -> AttachTarget:
        """The account's instance (``InvalidInstanceID.NotFound`` / ``.Malformed``)."""
        ...


class InterfaceGroups(Protocol):
    """The security groups service as interfaces see it."""

    def resolve(
        self,
        account_id: str,
        vpc_id: str | None,
        names: Sequence[str] = (),
        ids: Sequence[str] = (),
        subnet_id: str = "",
    ) -> list[SecurityGroup]: ...

    def members_changed(self, vpc_id: str) -> None: ...


@dataclass(frozen=True)
class CreateRequest:
    subnet_id: str | None
    description: str | None = None
    private_ip: str | None = None
    private_ips: tuple[tuple[str, bool], ...] = ()
    """``PrivateIpAddresses``: each address and whether it is the primary one."""
    secondary_count: int | None = None
    group_ids: tuple[str, ...] = ()
    interface_type: str | None = None
    client_token: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AttributeChange:
    """ModifyNetworkInterfaceAttribute: exactly one of these is given."""

    description: str | None = None
    source_dest_check: bool | None = None
    group_ids: tuple[str, ...] | None = None
    attachment: tuple[str | None, bool | None] | None = None
    """(AttachmentId, DeleteOnTermination)."""


class InterfaceChanges:
    def __init__(
        self,
        interfaces: Interfaces,
        groups: InterfaceGroups,
        instances: InstanceLookup,
        set_instance_groups: Callable[[str, str, Sequence[str]], None],
    ) -> None:
        """``set_instance_groups(account_id, instance_id, group_ids)`` changes an
        instance's groups (its primary interface's)."""
        self.interfaces = interfaces
        self.db = interfaces.db
        self.tags = interfaces.tags
        self.groups = groups
        self.instances = instances
        self.set_instance_groups = set_instance_groups
        self.allocation: AbstractContextManager[Any] = nullcontext()
        """Held while private addresses are chosen and written (RunInstances' lock)."""
        self.routes_changed: Callable[[str], None] = lambda _vpc_id: None
        """Told a VPC after a committed SourceDestCheck change of one of its interfaces."""
        self.changed: Callable[[str], None] = lambda _instance_id: None
        """Told the instance after a committed change of its interfaces or their addresses
        (the reconciler settles attachments and renews the instance's metadata)."""

    # -- Create / Delete ------------------------------------------------------------------

    def create(self, account_id: str, request: CreateRequest) -> InterfaceView:
        if request.interface_type not in (None, "interface"):
            raise CloudError(
                "UnsupportedOperation",
                f"The interface type {request.interface_type} is not supported.",
            )
        description = checked_description(request.description)
        token = request.client_token
        if token is not None and (len(token) > 64 or not token.isascii()):
            raise invalid_value("The client token must be at most 64 ASCII characters.")
        primary, wanted = requested_addresses(request.private_ip, request.private_ips)
        count = request.secondary_count
        if count is not None and count < 1:
            raise invalid_value(
                f"Value ({count}) for parameter secondaryPrivateIpAddressCount is invalid."
            )
        with self.db.session() as session:
            subnet = owned(session, SUBNET, account_id, request.subnet_id)
            vpc_id, subnet_id = subnet.vpc_id, subnet.id
        groups = self.groups.resolve(account_id, vpc_id, (), request.group_ids, subnet_id)
        with self.allocation, self.db.write_session() as session:
            if token:
                earlier = session.scalar(
                    select(NetworkInterface).where(
                        NetworkInterface.account_id == account_id,
                        NetworkInterface.client_token == token,
                    )
                )
                if earlier is not None:
                    if earlier.subnet_id != subnet_id:
                        raise CloudError(
                            "IdempotentParameterMismatch",
                            "The client token was already used with other parameters.",
                        )
                    return self.interfaces.view(session, earlier)
            subnet = owned(session, SUBNET, account_id, subnet_id)
            interface = make_interface(
                session, account_id, subnet, stored(groups), primary, description or "", token
            )
            add_secondaries(
                session, interface, subnet.cidr_block, wanted, count or 0, MOST_ADDRESSES
            )
            if request.tags:
                self.tags.put(session, account_id, [interface.id], dict(request.tags))
            return self.interfaces.view(session, interface)

    def delete(self, account_id: str, interface_id: str | None) -> None:
        with self.db.write_session() as session:
            interface = owned(session, INTERFACE, account_id, interface_id)
            if interface.instance_id or interface.status == "in-use":
                raise in_use(interface.id)
            self.tags.forget(session, [interface.id])
            forget(session, [interface.id])

    # -- Attach / Detach ------------------------------------------------------------------

    def attach(
        self,
        account_id: str,
        interface_id: str | None,
        instance_id: str | None,
        device_index: int | None,
    ) -> str:
        if not instance_id:
            raise missing_parameter("InstanceId")
        if device_index is None:
            raise missing_parameter("DeviceIndex")
        if device_index < 0:
            raise invalid_value(f"Value ({device_index}) for parameter deviceIndex is invalid.")
        with self.db.write_session() as session:
            interface = owned(session, INTERFACE, account_id, interface_id)
            target = self.instances(session, account_id, instance_id)
            attach(session, interface, target, device_index)
            assert interface.attachment_id is not None
            attachment_id = interface.attachment_id
        self.changed(target.instance_id)
        return attachment_id

    def detach(self, account_id: str, attachment_id: str | None, force: bool = False) -> None:
        """``Force`` changes nothing: no guest is asked to let go of the interface."""
        del force
        if not attachment_id:
            raise missing_parameter("AttachmentId")
        with self.db.write_session() as session:
            interface = self._attached(session, account_id, attachment_id)
            if interface.device_index == 0:
                raise CloudError(
                    "OperationNotPermitted",
                    "The network interface at device index 0 cannot be detached.",
                )
            assert interface.instance_id is not None
            target = self.instances(session, account_id, interface.instance_id)
            if target.state in ("pending", "running", "stopping"):
                interface.attachment_status = "detaching"  # until the guest lets go
            else:
                detach_rows(session, [interface])
        self.changed(target.instance_id)

    def _attached(self, session: Session, account_id: str, attachment_id: str) -> NetworkInterface:
        interface = session.scalar(
            select(NetworkInterface).where(NetworkInterface.attachment_id == attachment_id)
        )
        if interface is None or interface.account_id != account_id:
            raise CloudError(
                "InvalidAttachmentID.NotFound",
                f"The attachment ID '{attachment_id}' does not exist",
            )
        return interface

    # -- Attributes -----------------------------------------------------------------------

    def modify_attribute(
        self, account_id: str, interface_id: str | None, change: AttributeChange
    ) -> None:
        given = [
            name
            for name, value in (
                ("description", change.description),
                ("sourceDestCheck", change.source_dest_check),
                ("groupSet", change.group_ids),
                ("attachment", change.attachment),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise invalid_combination(
                f"Fields for multiple attribute types specified: {', '.join(given)}"
            )
        if not given:
            raise missing_parameter("Attribute")
        if change.group_ids is not None:
            self._set_groups(account_id, interface_id, change.group_ids)
            return
        forwarding_of = None  # the VPC whose forwarding interfaces changed
        with self.db.write_session() as session:
            interface = owned(session, INTERFACE, account_id, interface_id)
            if change.description is not None:
                interface.description = checked_description(change.description) or ""
            elif change.source_dest_check is not None:
                source_dest_check(session, None, interface.id, change.source_dest_check)
                forwarding_of = interface.vpc_id
            elif change.attachment is not None:
                attachment_id, delete_on_termination = change.attachment
                if not attachment_id:
                    raise missing_parameter("Attachment.AttachmentId")
                if attachment_id != interface.attachment_id:
                    raise CloudError(
                        "InvalidAttachmentID.NotFound",
                        f"The attachment ID '{attachment_id}' does not exist",
                    )
                if delete_on_termination is not None:
                    interface.delete_on_termination = delete_on_termination
        if forwarding_of:
            self.routes_changed(forwarding_of)

    def _set_groups(
        self, account_id: str, interface_id: str | None, group_ids: Sequence[str]
    ) -> None:
        if not group_ids:
            raise missing_parameter("SecurityGroupId")
        with self.db.session() as session:
            interface = owned(session, INTERFACE, account_id, interface_id)
            vpc_id, subnet_id = interface.vpc_id, interface.subnet_id
            primary_of = interface.instance_id if interface.device_index == 0 else None
        if primary_of:
            self.set_instance_groups(account_id, primary_of, group_ids)
            return
        groups = self.groups.resolve(account_id, vpc_id, (), group_ids, subnet_id)
        with self.db.write_session() as session:
            interface = owned(session, INTERFACE, account_id, interface_id)
            interface.security_groups = stored(groups)
        self.groups.members_changed(vpc_id)

    def describe_attribute(
        self, account_id: str, interface_id: str | None, attribute: str | None
    ) -> tuple[str, Any]:
        """The attribute asked for (AWS's name), with the view that holds its value."""
        if attribute is not None and attribute not in ATTRIBUTES:
            raise invalid_value(f"Value ({attribute}) for parameter attribute is invalid.")
        if attribute is None:
            raise missing_parameter("Attribute")
        with self.db.session() as session:
            interface = owned(session, INTERFACE, account_id, interface_id)
            return attribute, self.interfaces.view(session, interface)

    def reset_attribute(self, account_id: str, interface_id: str | None, name: str | None) -> None:
        """ResetNetworkInterfaceAttribute: only ``sourceDestCheck`` (back on)."""
        if name != "sourceDestCheck":
            raise invalid_value(f"Value ({name}) for parameter attribute is invalid.")
        self.modify_attribute(account_id, interface_id, AttributeChange(source_dest_check=True))

    # -- Secondary addresses ----------------------------------------------------------------

    def assign(
        self,
        account_id: str,
        interface_id: str | None,
        private_ips: Sequence[str],
        count: int | None,
        allow_reassignment: bool = False,
    ) -> list[str]:
        if private_ips and count is not None:
            raise invalid_combination(
                "Only one of PrivateIpAddresses or SecondaryPrivateIpAddressCount may be given"
            )
        if not private_ips and count is None:
            raise missing_parameter("PrivateIpAddresses or SecondaryPrivateIpAddressCount")
        if count is not None and count < 1:
            raise invalid_value(
                f"Value ({count}) for parameter secondaryPrivateIpAddressCount is invalid."
            )
        with self.allocation, self.db.write_session() as session:
            interface = owned(session, INTERFACE, account_id, interface_id)
            cidr = self._cidr(session, interface)
            limit = MOST_ADDRESSES
            if interface.instance_id:
                instance = self.instances(session, account_id, interface.instance_id)
                limit = limits_of(instance.instance_type).addresses
            added = add_secondaries(
                session,
                interface,
                cidr,
                private_ips,
                count or 0,
                limit,
                reassign=allow_reassignment,
            )
            instance_id = interface.instance_id
        if instance_id:
            self.changed(instance_id)
        return added

    def unassign(
        self, account_id: str, interface_id: str | None, private_ips: Sequence[str]
    ) -> None:
        if not private_ips:
            raise missing_parameter("PrivateIpAddresses")
        with self.db.write_session() as session:
            interface = owned(session, INTERFACE, account_id, interface_id)
            have = set(secondaries(session, interface.id))
            if not set(private_ips) <= have:
                raise invalid_value(
                    f"Some of the specified addresses are not assigned to interface {interface.id}"
                )
            disassociate(session, interface.id, private_ips)
            session.execute(
                delete(InterfaceAddress).where(
                    InterfaceAddress.network_interface_id == interface.id,
                    InterfaceAddress.private_ip.in_(list(private_ips)),
                )
            )
            instance_id = interface.instance_id
        if instance_id:
            self.changed(instance_id)

    @staticmethod
    def _cidr(session: Session, interface: NetworkInterface) -> str:
        return session.get(SUBNET.model, interface.subnet_id).cidr_block
