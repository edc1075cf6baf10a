"""Where the cloud lives and how it is reached: the settings of one `karri up`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_REGION = "eucalyptus"
ADMIN_ACCOUNT = "eucalyptus"


def default_data_dir() -> Path:
    return Path(os.environ.get("KARRI_HOME", "~/.karri")).expanduser()


def default_s3_processes() -> int:
    """One per core, up to eight."""
    return max(1, min(os.cpu_count() or 1, 8))


def wildcard(host: str) -> bool:
    """Whether ``host`` is every address of the machine (``0.0.0.0``, ``::``)."""
    return host.strip("[]") in ("", "0.0.0.0", "::")


def sqlite_url(data_dir: Path) -> str:
    """The default database: one SQLite file in the data dir."""
    return f"sqlite:///{data_dir / 'karri.db'}"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    ec2_port: int = 8773
    s3_port: int = 8774
    db_url: str | None = None
    region: str = DEFAULT_REGION
    s3_domain: str = "s3.localhost"
    private_subnet: str = "172.31.0.0/16"
    public_pool: str = "127.64.0.0/16"
    public_interface: str | None = None  # the host's uplink the pool is on (None: loopback)
    dhcp_lease_seconds: int = 3600  # the guests' DHCP leases (AWS's hour)
    cpu_overcommit: float = 4.0
    memory_overcommit: float = 1.0
    max_volume_gib: int = 1024  # Eucalyptus's storage.maxvolumesizeingb
    default_images: bool = True  # build and register the default image set on first start
    max_image_gib: int = 10  # the largest image RegisterImage or ImportImage accepts
    accelerator: str = "auto"  # auto (probe KVM), kvm or tcg
    stop_instances_on_exit: bool = False
    node_driver: str = "qemu"  # "fake" runs no guests: for API-scale benchmarks only
    node_port: int | None = None  # the node gateway (TLS) for nodes on other hosts; None: off
    node_address: str | None = None  # where other hosts reach the gateway (None: ``host``)
    local_node: bool = True  # False (`--no-local-node`): instances run on joined nodes only
    scheduler: str = (
        "roundrobin"  # which node a new instance goes to (cloud/instances/placement.py)
    )
    # Processes serving the S3 port (`karri up` itself and the rest; see api.s3.processes).
    s3_processes: int = field(default_factory=default_s3_processes)
    # Where object bytes live: "files" under the data dir, or "rados" (a Ceph pool).
    walrus_backend: str = "files"
    ceph_conf: str | None = None  # the Ceph configuration file (None: librados's default)
    ceph_user: str = "admin"
    rados_pool: str = "karri-objects"
    # Where volumes live: "files" under the data dir, or "rbd" (images in a Ceph pool).
    ebs_backend: str = "files"
    rbd_pool: str = "karri-volumes"

    @property
    def database_url(self) -> str:
        return self.db_url or sqlite_url(self.data_dir)

    @property
    def ec2_url(self) -> str:
        return f"http://{self.host}:{self.ec2_port}"

    @property
    def s3_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def node_host(self) -> str:
        """The address nodes on other hosts reach the gateway at: ``node_address``, else
        ``host`` (which names no one address if it is a wildcard: ``wildcard``)."""
        return self.node_address or self.host

    @property
    def node_url(self) -> str | None:
        """Where nodes on other hosts reach the cloud (``karri node``), if they may: what
        the join answer and the gateway's announcements tell them."""
        return f"https://{self.node_host}:{self.node_port}" if self.node_port else None

    @property
    def zone(self) -> str:
        """The first availability zone (cluster): the cloud's own node's."""
        return f"{self.region}-1a"

    @property
    def zones(self) -> list[str]:
        """Every zone: the first, then those `karri zone create` added (``settings.json``),
        which nodes on other hosts join (``karri node --zone``)."""
        return [self.zone, *saved_zones(self.data_dir)]

    @property
    def runtime_file(self) -> Path:
        return self.data_dir / "runtime.json"

    def write_runtime(self, pid: int) -> None:
        """Record how the running cloud is reached, for `karri status` and the CLI."""
        data = {k: str(v) for k, v in asdict(self).items()} | {
            "pid": pid,
            "ec2_url": self.ec2_url,
            "s3_url": self.s3_url,
        }
        tmp = self.runtime_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.runtime_file)


SAVED_FILE = "settings.json"


def saved_settings(data_dir: Path) -> dict:
    """What the data dir keeps between runs (``settings.json``): today only ``db_url``,
    written by `karri db migrate-to` so that every later `karri up` and CLI command finds
    the cloud's database without ``--db-url``."""
    try:
        saved = json.loads((data_dir / SAVED_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def save_settings(data_dir: Path, **values: object) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SAVED_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(saved_settings(data_dir) | values, indent=2))
    os.chmod(tmp, 0o600)  # a URL may carry a password
    tmp.replace(path)


WALRUS_SETTINGS = ("walrus_backend", "ceph_conf", "ceph_user", "rados_pool")


def saved_walrus(data_dir: Path) -> dict[str, str]:
    """The object store's backend as the data dir keeps it (``settings.json``): its
    objects' bytes are where the first `karri up --walrus-backend` put them."""
    saved = saved_settings(data_dir)
    return {k: saved[k] for k in WALRUS_SETTINGS if isinstance(saved.get(k), str) and saved[k]}


EBS_SETTINGS = ("ebs_backend", "ceph_conf", "ceph_user", "rbd_pool")


def saved_ebs(data_dir: Path) -> dict[str, str]:
    """The volumes' backend as the data dir keeps it (``settings.json``): its volumes are
    where the first `karri up --ebs-backend` put them."""
    saved = saved_settings(data_dir)
    return {k: saved[k] for k in EBS_SETTINGS if isinstance(saved.get(k), str) and saved[k]}


def saved_zones(data_dir: Path) -> list[str]:
    zones = saved_settings(data_dir).get("zones")
    return [z for z in zones if isinstance(z, str)] if isinstance(zones, list) else []


def saved_db_url(data_dir: Path) -> str | None:
    url = saved_settings(data_dir).get("db_url")
    return url if isinstance(url, str) and url else None


def read_runtime(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "runtime.json").read_text())
    except (OSError, ValueError):
        return None
