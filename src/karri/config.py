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
    cpu_overcommit: float = 4.0
    memory_overcommit: float = 1.0
    max_volume_gib: int = 1024  # Eucalyptus's storage.maxvolumesizeingb
    default_images: bool = True  # build and register the default image set on first start
    max_image_gib: int = 10  # the largest image RegisterImage or ImportImage accepts
    accelerator: str = "auto"  # auto (probe KVM), kvm or tcg
    stop_instances_on_exit: bool = False
    node_driver: str = "qemu"  # "fake" runs no guests: for API-scale benchmarks only
    # Processes serving the S3 port (`karri up` itself and the rest; see api.s3.processes).
    s3_processes: int = field(default_factory=default_s3_processes)

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'karri.db'}"

    @property
    def ec2_url(self) -> str:
        return f"http://{self.host}:{self.ec2_port}"

    @property
    def s3_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def zone(self) -> str:
        """The single availability zone (cluster) of a one-host cloud."""
        return f"{self.region}-1a"

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


def read_runtime(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "runtime.json").read_text())
    except (OSError, ValueError):
        return None
