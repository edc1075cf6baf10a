"""DescribeInstances' instances rendered once per change: each instance's XML kept by
(instance id, version), joined under its reservation's element on every call.

``instances.version`` is bumped by the database's triggers in the transaction of any
change to what the answer shows of an instance (migration ``c004_instance_render_versions``),
so a fragment kept under the version a call lists is what a rendering would write now; a
fragment is kept under the version read *before* what was rendered in it, so it is never
older than its version (a newer one is simply rendered again at the next call). Process-
local: every front end keeps its own, the versions come from the shared database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from karri.api.ec2.model import Ec2Model, Member
from karri.api.ec2.render import Prerendered, render_element, render_pieces

DEFAULT_BUDGET = 256 * 1024 * 1024
"""Bytes of XML kept (a fragment is ~3.5 KB: some 70,000 instances)."""


class Fragment(NamedTuple):
    version: int
    instance: bytes
    """The ``Instance`` element (``<item>…</item>``) as the answer writes it."""
    groups: bytes
    """The ``groupSet`` element of its groups: its reservation's groups when it comes first
    of the reservation in a page."""


class Listed(Protocol):
    """An instance of the page (``cloud/instances/listing.Listed``)."""

    @property
    def id(self) -> str: ...
    @property
    def reservation_id(self) -> str: ...
    @property
    def owner_id(self) -> str: ...
    @property
    def version(self) -> int: ...


class FragmentCache:
    """The fragments by instance id, the newest rendered of each; past ``budget``
    bytes, the oldest kept go first."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self.budget = budget
        self._kept: dict[str, Fragment] = {}
        self._size = 0
        self._lock = threading.Lock()

    def get(self, instance_id: str, version: int) -> Fragment | None:
        fragment = self._kept.get(instance_id)
        return fragment if fragment is not None and fragment.version == version else None

    def put(self, instance_id: str, fragment: Fragment) -> None:
        with self._lock:
            old = self._kept.pop(instance_id, None)
            if old is not None:
                if old.version > fragment.version:  # a slower call rendered an older one
                    self._kept[instance_id] = old
                    return
                self._size -= _size(old)
            self._kept[instance_id] = fragment
            self._size += _size(fragment)
            while self._size > self.budget and self._kept:
                oldest = next(iter(self._kept))
                self._size -= _size(self._kept.pop(oldest))

    def __len__(self) -> int:
        return len(self._kept)


def _size(fragment: Fragment) -> int:
    return len(fragment.instance) + len(fragment.groups)


class InstanceXml:
    """Where the answer's model puts instances: the shapes and element names of
    DescribeInstances' reservations, their groups and their instances."""

    def __init__(self, model: Ec2Model) -> None:
        self.model = model
        result = model.shape(model.output_shape("DescribeInstances") or "")
        reservations = _member(model, result.name, "Reservations")
        reservation_list = model.shape(reservations.shape)
        tag = reservations.xml_name
        self.reservations_open, self.reservations_close = f"<{tag}>".encode(), f"</{tag}>".encode()
        self.no_reservations = f"<{tag}/>".encode()
        self.reservation_shape = model.shape(reservation_list.member_shape or "")
        self.reservation_tag = reservation_list.item_name
        groups = _member(model, self.reservation_shape.name, "Groups")
        self.groups_shape, self.groups_tag = groups.shape, groups.xml_name
        instances = _member(model, self.reservation_shape.name, "Instances")
        instance_list = model.shape(instances.shape)
        tag = instances.xml_name
        self.instances_open, self.instances_close = f"<{tag}>".encode(), f"</{tag}>".encode()
        self.instance_shape = instance_list.member_shape or ""
        self.instance_tag = instance_list.item_name

    def fragment(self, version: int, instance: dict, groups: list[dict]) -> Fragment:
        """An instance's fragment from its ``instance_info`` and its groups' list."""
        return Fragment(
            version,
            render_element(self.model, self.instance_shape, self.instance_tag, instance),
            render_element(self.model, self.groups_shape, self.groups_tag, groups),
        )

    def answer(
        self, page: Sequence[Listed], fragments: dict[str, Fragment], next_token: str | None
    ) -> Prerendered:
        """The answer to the page (its instances by reservation and launch index), each
        instance's fragment from ``fragments``."""
        pieces: list[bytes] = []
        for group in _by_reservation(page):
            pieces.extend(self._reservation(group, fragments))
        if pieces:
            pieces = [self.reservations_open, *pieces, self.reservations_close]
        else:
            pieces = [self.no_reservations]
        return Prerendered({"NextToken": next_token}, {"Reservations": pieces})

    def _reservation(self, group: list[Listed], fragments: dict[str, Fragment]) -> list[bytes]:
        first = group[0]
        instances = [self.instances_open, *(fragments[i.id].instance for i in group)]
        instances.append(self.instances_close)
        return render_pieces(
            self.model,
            self.reservation_shape,
            {"OwnerId": first.owner_id, "ReservationId": first.reservation_id},
            {"Groups": [fragments[first.id].groups], "Instances": instances},
            f"<{self.reservation_tag}>",
            f"</{self.reservation_tag}>",
        )


def _member(model: Ec2Model, shape_name: str, name: str) -> Member:
    return next(m for m in model.shape(shape_name).members if m.name == name)


def _by_reservation(page: Iterable[Listed]) -> list[list[Listed]]:
    groups: list[list[Listed]] = []
    for item in page:
        if groups and groups[-1][0].reservation_id == item.reservation_id:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


@dataclass
class InstanceFragments:
    """A front end's kept fragments and how it writes them (``Ec2Api`` holds one)."""

    xml: InstanceXml
    cache: FragmentCache = field(default_factory=FragmentCache)
