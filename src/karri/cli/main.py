"""`karri up`, `karri status`, `karri account ...`, `karri vmtype ...`, `karri lifecycle`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
from rich.table import Table

from karri.cli.common import (
    console,
    data_dir_option,
    db_url_option,
    fail,
    open_cloud,
)
from karri.cli.db import db as db_commands
from karri.cli.images import image as image_commands
from karri.cli.lifecycle import lifecycle as lifecycle_commands
from karri.cli.nodes import node as node_commands
from karri.cli.nodes import zone as zone_commands
from karri.cli.storage import storage as storage_commands
from karri.config import (
    EBS_SETTINGS,
    WALRUS_SETTINGS,
    Settings,
    save_settings,
    saved_db_url,
    saved_ebs,
    saved_walrus,
    wildcard,
)
from karri.errors import CloudError


@click.group()
def main() -> None:
    """karri: an AWS-compatible private cloud (EC2, EBS and S3), after Eucalyptus."""


@main.command()
@data_dir_option
@db_url_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--ec2-port", default=8773, show_default=True, type=int)
@click.option("--s3-port", default=8774, show_default=True, type=int)
@click.option("--region", default="eucalyptus", show_default=True)
@click.option("--verbose", is_flag=True, help="Also log every request to the console.")
@click.option(
    "--no-default-images",
    "no_default_images",
    is_flag=True,
    help="Do not build and register the default image set (karri-tiny).",
)
@click.option(
    "--max-image-size",
    "max_image_gib",
    default=10,
    show_default=True,
    type=int,
    help="The largest image (GiB) that RegisterImage and ImportImage accept.",
)
@click.option(
    "--max-volume-size",
    "max_volume_gib",
    default=1024,
    show_default=True,
    type=int,
    help="The largest EBS volume (GiB) that CreateVolume accepts.",
)
@click.option(
    "--accelerator",
    type=click.Choice(["auto", "kvm", "tcg"]),
    default="auto",
    show_default=True,
    help="auto probes KVM with a throwaway guest and falls back to TCG.",
)
@click.option(
    "--private-subnet",
    default="172.31.0.0/16",
    show_default=True,
    help="Ignored: every default VPC is 172.31.0.0/16, as on AWS.",
)
@click.option(
    "--public-pool",
    default="127.64.0.0/16",
    show_default=True,
    help="Public addresses: each maps, on every port its groups allow, to its instance.",
)
@click.option(
    "--public-interface",
    default=None,
    metavar="IF",
    help="The host's interface on whose network --public-pool lies: instances with a "
    "public IP are reached and go out there. Default: the pool stays on loopback and "
    "guests reach nothing outside their VPC.",
)
@click.option(
    "--dhcp-lease",
    "dhcp_lease_seconds",
    type=click.IntRange(120, 86400 * 365),
    default=3600,
    show_default=True,
    metavar="SECONDS",
    help="The guests' DHCP leases: a running guest sees a changed DHCP option set when it "
    "renews, at half of it.",
)
@click.option(
    "--stop-instances-on-exit",
    is_flag=True,
    help="Power the instances off when karri stops (otherwise they keep running).",
)
@click.option(
    "--cpu-overcommit",
    type=float,
    default=4.0,
    show_default=True,
    help="How many guest vCPUs the node runs per host CPU.",
)
@click.option(
    "--node-driver",
    type=click.Choice(["qemu", "fake"]),
    default="qemu",
    show_default=True,
    help="fake runs no guests at all: only for benchmarks of the API at scale.",
)
@click.option(
    "--node-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve the node gateway (mutual TLS) on this port of --host, so that nodes on "
    "other hosts may join (karri node token). Default: no gateway.",
)
@click.option(
    "--node-address",
    default=None,
    metavar="ADDRESS",
    help="The address nodes on other hosts reach the node gateway at (what they are told, "
    "what its certificate names); needed when --host is a wildcard.  [default: --host]",
)
@click.option(
    "--no-local-node",
    is_flag=True,
    help="Run no node on this host (no VPC namespace, QEMU or dnsmasq): instances run on "
    "joined nodes only; needs --node-port. On PostgreSQL several such front ends may serve "
    "one cloud, one of them running its background work at a time.",
)
@click.option(
    "--scheduler",
    type=click.Choice(["roundrobin", "greedy"]),
    default="roundrobin",
    show_default=True,
    help="Which node of the zone a new instance goes to: the next one in turn "
    "(roundrobin, spreads) or the first with room (greedy, packs); Eucalyptus's policies.",
)
@click.option(
    "--walrus-backend",
    type=click.Choice(["files", "rados"]),
    default=None,
    help="Where object bytes live: files in the data dir, or a Ceph RADOS pool (the "
    "choice is kept in the data dir)  [default: the kept one, else files]",
)
@click.option("--ceph-conf", default=None, help="The Ceph configuration file (rados).")
@click.option("--ceph-user", default=None, help="The Ceph client user, without client.  [admin]")
@click.option("--rados-pool", default=None, help="The pool of object bytes  [karri-objects]")
@click.option(
    "--ebs-backend",
    type=click.Choice(["files", "rbd"]),
    default=None,
    help="Where volumes live: files in the data dir, or Ceph RBD images (the choice is "
    "kept in the data dir)  [default: the kept one, else files]",
)
@click.option("--rbd-pool", default=None, help="The pool of volume images  [karri-volumes]")
@click.option(
    "--s3-processes",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes serving the S3 port  [default: one per core, up to 8]",
)
def up(
    data_dir: Path,
    db_url: str | None,
    host: str,
    ec2_port: int,
    s3_port: int,
    region: str,
    verbose: bool,
    no_default_images: bool,
    max_image_gib: int,
    max_volume_gib: int,
    accelerator: str,
    private_subnet: str,
    public_pool: str,
    public_interface: str | None,
    dhcp_lease_seconds: int,
    stop_instances_on_exit: bool,
    node_driver: str,
    cpu_overcommit: float,
    node_port: int | None,
    node_address: str | None,
    no_local_node: bool,
    scheduler: str,
    s3_processes: int | None,
    walrus_backend: str | None,
    ceph_conf: str | None,
    ceph_user: str | None,
    rados_pool: str | None,
    ebs_backend: str | None,
    rbd_pool: str | None,
) -> None:
    """Run the whole single-host cloud in the foreground (Ctrl-C stops it)."""
    from karri.up import serve

    if node_port is not None and wildcard(node_address or host):
        raise click.UsageError(
            f"--host {host} is every address of this host, none of which nodes on other "
            "hosts are sure to reach: give the one they reach with --node-address"
        )
    if no_local_node and node_port is None:
        raise click.UsageError(
            "--no-local-node needs --node-port: without a node of its own the cloud runs "
            "instances only on joined nodes, which reach it through the node gateway"
        )
    given = dict(
        walrus_backend=walrus_backend, ceph_conf=ceph_conf, ceph_user=ceph_user,
        rados_pool=rados_pool,
    )  # fmt: skip
    saved = saved_walrus(data_dir)
    before = saved.get("walrus_backend") or ("files" if (data_dir / "walrus").exists() else None)
    if walrus_backend and before and walrus_backend != before:
        raise click.ClickException(
            f"the objects of {data_dir} are kept in {before}: karri does not move them "
            f"to {walrus_backend}"
        )
    walrus = saved | {k: v for k, v in given.items() if v}
    if any(given.values()):
        save_settings(data_dir, **{k: walrus.get(k) for k in WALRUS_SETTINGS})
    ebs = _ebs_settings(data_dir, ebs_backend, ceph_conf, ceph_user, rbd_pool)

    serve(
        Settings(
            data_dir=data_dir,
            host=host,
            ec2_port=ec2_port,
            s3_port=s3_port,
            db_url=db_url or saved_db_url(data_dir),
            region=region,
            default_images=not no_default_images,
            max_image_gib=max_image_gib,
            max_volume_gib=max_volume_gib,
            accelerator=accelerator,
            private_subnet=private_subnet,
            public_pool=public_pool,
            public_interface=public_interface,
            dhcp_lease_seconds=dhcp_lease_seconds,
            stop_instances_on_exit=stop_instances_on_exit,
            node_driver=node_driver,
            cpu_overcommit=cpu_overcommit,
            node_port=node_port,
            node_address=node_address,
            local_node=not no_local_node,
            scheduler=scheduler,
            **({"s3_processes": s3_processes} if s3_processes else {}),
            **(walrus | ebs),
        ),
        verbose=verbose,
    )


def _ebs_settings(
    data_dir: Path,
    backend: str | None,
    ceph_conf: str | None,
    ceph_user: str | None,
    rbd_pool: str | None,
) -> dict[str, str]:
    """The volumes' backend: the one given (saved in the data dir when new), else the
    saved one; a data dir's volumes never silently change backend."""
    saved = saved_ebs(data_dir)
    volumes = data_dir / "volumes"
    has_files = volumes.exists() and any(volumes.glob("vol-*"))
    before = saved.get("ebs_backend") or ("files" if has_files else None)
    if backend and before and backend != before:
        raise click.ClickException(
            f"the volumes of {data_dir} are kept in {before}: karri does not move them to {backend}"
        )
    given = dict(ebs_backend=backend, ceph_conf=ceph_conf, ceph_user=ceph_user, rbd_pool=rbd_pool)
    ebs = saved | {k: v for k, v in given.items() if v}
    if backend or (saved and rbd_pool):
        save_settings(data_dir, **{k: ebs.get(k) for k in EBS_SETTINGS})
    return {k: v for k, v in ebs.items() if k != "ceph_conf" or v}


@main.command()
@data_dir_option
@click.option(
    "--guests",
    is_flag=True,
    help="Also end the data dir's running guests (otherwise they keep running).",
)
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    type=float,
    help="Seconds karri up gets to stop before it is killed.",
)
def down(data_dir: Path, guests: bool, timeout: float) -> None:
    """Stop the karri of a data dir and end what it left: dnsmasq, namespace (and guests)."""
    from karri.down import down as end
    from karri.lock import DataDirInUse

    try:
        report = end(data_dir, guests=guests, timeout=timeout)
    except DataDirInUse as error:  # a karri up that started meanwhile
        raise SystemExit(str(error)) from None
    for line in report.lines():
        console.print(line)


@main.command()
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(data_dir: Path, as_json: bool) -> None:
    """The cloud at a glance: endpoints, components, accelerator and resource counts."""
    from karri.cli.status import collect, render

    report = collect(data_dir)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        render(console, report)


@main.group()
def account() -> None:
    """Accounts and their credentials (admin)."""


@account.command("create")
@click.argument("name")
@data_dir_option
@click.option("--json", "as_json", is_flag=True)
def account_create(name: str, data_dir: Path, as_json: bool) -> None:
    """Create an account with its own access key."""
    try:
        creds = open_cloud(data_dir).accounts.create(name)
    except CloudError as error:
        fail(error)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(creds)))
        return
    console.print(f"account      {creds.account_name} ({creds.account_id})")
    console.print(f"access key   {creds.access_key_id}")
    console.print(f"secret key   {creds.secret_access_key}")


@account.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True)
def account_list(data_dir: Path, as_json: bool) -> None:
    """List the accounts."""
    accounts = open_cloud(data_dir).accounts.list()
    if as_json:
        click.echo(json.dumps([{"account_id": a.id, "account_name": a.name} for a in accounts]))
        return
    table = Table("account", "id", "created")
    for a in accounts:
        table.add_row(a.name, a.id, a.created_at.strftime("%Y-%m-%d %H:%M:%S"))
    console.print(table)


@account.command("credentials")
@click.argument("name")
@data_dir_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the rc file (default: DATA_DIR/NAME.rc).",
)
def account_credentials(name: str, data_dir: Path, output: Path | None) -> None:
    """Write an account's rc file (like eucarc) to source in a shell."""
    from karri.rcfile import write_account_rc

    cloud = open_cloud(data_dir)
    try:
        creds = cloud.accounts.credentials(name)
    except CloudError as error:
        fail(error)
    settings = cloud.settings
    path = output or data_dir / f"{name}.rc"
    write_account_rc(path, creds, settings)
    console.print(f"wrote {path}")


@main.group()
def vmtype() -> None:
    """VM types: what each instance type gives a guest (admin)."""


@vmtype.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True)
def vmtype_list(data_dir: Path, as_json: bool) -> None:
    """List the VM types."""
    types = open_cloud(data_dir).vmtypes.list()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "cpu": t.cpu,
                        "memory_mib": t.memory_mib,
                        "disk_gib": t.disk_gib,
                    }
                    for t in types
                ]
            )
        )
        return
    table = Table("name", "cpu", "memory (MiB)", "disk (GiB)")
    for t in types:
        table.add_row(t.name, str(t.cpu), str(t.memory_mib), str(t.disk_gib))
    console.print(table)


@vmtype.command("set")
@click.argument("name")
@data_dir_option
@click.option("--cpu", type=int, default=None)
@click.option("--memory", type=int, default=None, help="MiB")
@click.option("--disk", type=int, default=None, help="GiB")
def vmtype_set(
    name: str, data_dir: Path, cpu: int | None, memory: int | None, disk: int | None
) -> None:
    """Change a VM type (or add one, given all three sizes)."""
    try:
        t = open_cloud(data_dir).vmtypes.set(name, cpu, memory, disk)
    except CloudError as error:
        fail(error)
    console.print(f"{t.name}: {t.cpu} cpu, {t.memory_mib} MiB, {t.disk_gib} GiB")


@main.command("cloud-cert")
@data_dir_option
def cloud_cert(data_dir: Path) -> None:
    """Print the cloud's certificate (the --ec2cert that euca2ools bundles with)."""
    from karri.cli.images import cloud_cert as show

    show(data_dir)


main.add_command(image_commands)
main.add_command(node_commands)
main.add_command(zone_commands)
main.add_command(lifecycle_commands)
main.add_command(db_commands)
main.add_command(storage_commands)


if __name__ == "__main__":  # pragma: no cover
    main()
