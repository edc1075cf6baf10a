"""Eucalyptus VM types: the instance types this cloud offers and what each gives a guest."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from karri.db.engine import Database
from karri.db.models import VmType
from karri.errors import CloudError, invalid_value

# Eucalyptus 4's defaults: name -> (vCPUs, memory MiB, root disk GiB).
DEFAULT_VM_TYPES: dict[str, tuple[int, int, int]] = {
    "t1.micro": (1, 256, 5),
    "t2.nano": (1, 512, 5),
    "t2.micro": (1, 1024, 10),
    "t2.small": (1, 2048, 10),
    "t2.medium": (2, 4096, 10),
    "m1.small": (1, 256, 5),
    "m1.medium": (1, 512, 10),
    "c1.medium": (2, 512, 10),
    "m1.large": (2, 512, 10),
    "m1.xlarge": (2, 1024, 10),
    "c1.xlarge": (2, 2048, 10),
    "m2.xlarge": (2, 2048, 10),
    "m3.xlarge": (4, 2048, 15),
    "m2.2xlarge": (2, 4096, 30),
    "m3.2xlarge": (4, 4096, 30),
    "cc1.4xlarge": (8, 3072, 60),
    "m2.4xlarge": (8, 4096, 60),
    "hi1.4xlarge": (8, 6144, 120),
    "cc2.8xlarge": (16, 6144, 120),
    "cg1.4xlarge": (16, 12288, 200),
    "cr1.8xlarge": (16, 16384, 240),
}


@dataclass(frozen=True)
class VmTypeView:
    """What an instance type gives a guest, as the API and the launcher read it."""

    name: str
    cpu: int
    memory_mib: int
    disk_gib: int

    @classmethod
    def of(cls, row: VmType) -> VmTypeView:
        return cls(row.name, row.cpu, row.memory_mib, row.disk_gib)


class VmTypes:
    def __init__(self, db: Database) -> None:
        self.db = db

    def ensure_defaults(self) -> None:
        with self.db.write_session() as session:
            if session.scalar(select(VmType.name).limit(1)) is not None:
                return
            for name, (cpu, memory, disk) in DEFAULT_VM_TYPES.items():
                session.add(VmType(name=name, cpu=cpu, memory_mib=memory, disk_gib=disk))

    def list(self) -> list[VmTypeView]:
        with self.db.session() as session:
            types = [VmTypeView.of(t) for t in session.scalars(select(VmType))]
        return sorted(types, key=lambda t: (t.cpu, t.memory_mib, t.disk_gib, t.name))

    def get(self, name: str) -> VmTypeView:
        with self.db.session() as session:
            vm_type = session.get(VmType, name)
        if vm_type is None:
            raise invalid_value(f"The instance type '{name}' does not exist")
        return VmTypeView.of(vm_type)

    def set(
        self,
        name: str,
        cpu: int | None = None,
        memory_mib: int | None = None,
        disk_gib: int | None = None,
    ) -> VmTypeView:
        """Change a VM type, or add one when all three sizes are given."""
        for label, value in (("cpu", cpu), ("memory", memory_mib), ("disk", disk_gib)):
            if value is not None and value < 1:
                raise invalid_value(f"{label} must be at least 1")
        with self.db.write_session() as session:
            vm_type = session.get(VmType, name)
            if vm_type is None:
                if None in (cpu, memory_mib, disk_gib):
                    raise CloudError(
                        "InvalidParameterValue",
                        f"New VM type {name} needs --cpu, --memory and --disk",
                    )
                vm_type = VmType(name=name, cpu=cpu, memory_mib=memory_mib, disk_gib=disk_gib)
                session.add(vm_type)
            else:
                vm_type.cpu = cpu or vm_type.cpu
                vm_type.memory_mib = memory_mib or vm_type.memory_mib
                vm_type.disk_gib = disk_gib or vm_type.disk_gib
            return VmTypeView.of(vm_type)
