"""`karri image install` (Eucalyptus's euca-install-image) and `karri cloud-cert`.

`image install` is an ordinary client of the cloud: it talks to the EC2 and S3 endpoints
with boto3, as any account, with the credentials of an rc file (``karri account
credentials``) or of the AWS environment variables. It fetches the cloud's certificate
(DescribeServiceCertificates), bundles the image in the euca2ools format, uploads the parts
with ``aws-exec-read`` as they are made, registers the image and waits for it.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

console = Console(stderr=True)
KINDS = ("machine", "kernel", "ramdisk")
WAIT_SECONDS = 3600


@dataclass(frozen=True)
class Endpoint:
    ec2_url: str
    s3_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    account_id: str | None


def read_rc(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            name, _, value = line.removeprefix("export ").partition("=")
            parsed = shlex.split(value)
            values[name.strip()] = parsed[0] if parsed else ""
    return values


def endpoint_from(rc: Path | None) -> Endpoint:
    """The rc file's settings, else (or where it lacks one) the environment's."""
    values = dict(os.environ)
    if rc is None and not os.environ.get("AWS_ACCESS_KEY_ID"):
        default = Path(os.environ.get("KARRI_HOME", "~/.karri")).expanduser() / "karrirc"
        rc = default if default.exists() else None
    if rc is not None:
        values.update(read_rc(rc))

    def pick(*names: str) -> str | None:
        for name in names:
            if values.get(name):
                return values[name].rstrip("/")
        return None

    ec2 = pick("AWS_ENDPOINT_URL_EC2", "EC2_URL", "AWS_ENDPOINT_URL")
    s3 = pick("AWS_ENDPOINT_URL_S3", "S3_URL", "AWS_ENDPOINT_URL")
    key, secret = pick("AWS_ACCESS_KEY_ID"), pick("AWS_SECRET_ACCESS_KEY")
    if not (ec2 and s3 and key and secret):
        raise click.ClickException(
            "no credentials: source an rc file (`karri account credentials NAME`), pass --rc, "
            "or set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_EC2 and "
            "AWS_ENDPOINT_URL_S3"
        )
    region = pick("AWS_DEFAULT_REGION", "AWS_REGION") or "eucalyptus"
    return Endpoint(ec2, s3, region, key, secret, pick("EC2_ACCOUNT_NUMBER"))


def clients(endpoint: Endpoint) -> tuple[Any, Any]:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=endpoint.access_key_id,
        aws_secret_access_key=endpoint.secret_access_key,
        region_name=endpoint.region,
    )
    config = Config(retries={"max_attempts": 3}, s3={"addressing_style": "path"})
    return (
        session.client("ec2", endpoint_url=endpoint.ec2_url, config=config),
        session.client("s3", endpoint_url=endpoint.s3_url, config=config),
    )


def cloud_certificate(endpoint: Endpoint):
    """The cloud's image-bundling certificate, from DescribeServiceCertificates."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from cryptography import x509
    from defusedxml import ElementTree

    body = urllib.parse.urlencode(
        {
            "Action": "DescribeServiceCertificates",
            "Version": "eucalyptus",
            "Format": "pem",
            "Filter.1.Name": "certificate-usage",
            "Filter.1.Value.1": "image-bundling",
        }
    )
    request = AWSRequest(
        "POST",
        endpoint.ec2_url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    credentials = Credentials(endpoint.access_key_id, endpoint.secret_access_key)
    SigV4Auth(credentials, "ec2", endpoint.region).add_auth(request)
    prepared = urllib.request.Request(
        request.url, data=body.encode(), headers=dict(request.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(prepared, timeout=30) as response:
            document = response.read()
    except OSError as error:
        raise click.ClickException(f"cannot get the cloud's certificate: {error}") from None
    for node in ElementTree.fromstring(document).iter():
        if node.tag.rsplit("}", 1)[-1] == "certificate" and node.text:
            return x509.load_pem_x509_certificate(node.text.strip().encode()).public_key()
    raise click.ClickException("the cloud did not hand out an image-bundling certificate")


def ensure_bucket(s3: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise click.ClickException(f"bucket {bucket}: {error}") from None
        # aws-exec-read needs ACLs on, which a new bucket has off (BucketOwnerEnforced)
        s3.create_bucket(Bucket=bucket, ObjectOwnership="ObjectWriter")


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def install(
    path: Path,
    kind: str,
    name: str | None,
    kernel: str | None,
    ramdisk: str | None,
    bucket: str | None,
    public: bool,
    architecture: str,
    endpoint: Endpoint,
    wait: bool = True,
) -> str:
    from botocore.exceptions import ClientError
    from cryptography.hazmat.primitives.asymmetric import rsa

    from karri.cloud.images.bundle import BundleSpec, create_bundle
    from karri.walrus.names import bundle_bucket

    ec2, s3 = clients(endpoint)
    cloud_key = cloud_certificate(endpoint)
    bucket = bucket or bundle_bucket(endpoint.access_key_id)
    ensure_bucket(s3, bucket)
    name = name or path.name
    prefix = f"{name}-{int(time.time())}"
    size = path.stat().st_size
    spec = BundleSpec(
        name=path.name,
        architecture=architecture,
        image_type=kind,
        account_id=endpoint.account_id or "",
        kernel_id=kernel,
        ramdisk_id=ramdisk,
    )
    user_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with tempfile.TemporaryDirectory(prefix="karri-bundle-") as tmp, progress_bar() as bar:
        bundling = bar.add_task("bundling", total=size)
        uploading = bar.add_task("uploading", total=None)
        uploaded = 0

        def upload(part_path: Path, _part: Any) -> None:
            nonlocal uploaded
            length = part_path.stat().st_size
            with open(part_path, "rb") as handle:
                s3.put_object(
                    Bucket=bucket,
                    Key=f"{prefix}/{part_path.name}",
                    Body=handle,
                    ACL="aws-exec-read",
                )
            part_path.unlink()
            uploaded += length
            bar.update(uploading, completed=uploaded, total=max(uploaded, size // 4))

        with open(path, "rb") as source:
            _, manifest_path = create_bundle(
                source,
                size,
                spec,
                cloud_key,
                Path(tmp),
                user_key=user_key,
                prefix=path.name,
                progress=lambda n: bar.advance(bundling, n),
                on_part=upload,
            )
        bar.update(uploading, total=uploaded, completed=uploaded)
        location = f"{bucket}/{prefix}/{manifest_path.name}"
        s3.put_object(
            Bucket=bucket,
            Key=f"{prefix}/{manifest_path.name}",
            Body=manifest_path.read_bytes(),
            ACL="aws-exec-read",
        )
    register: dict[str, Any] = {"ImageLocation": location, "Name": name}
    if kind == "machine":
        register["Architecture"] = architecture
    if kernel:
        register["KernelId"] = kernel
    if ramdisk:
        register["RamdiskId"] = ramdisk
    try:
        image_id = ec2.register_image(**register)["ImageId"]
    except ClientError as error:
        raise click.ClickException(str(error)) from None
    console.print(f"registered {image_id} from {location}")
    if wait:
        state, reason = wait_available(ec2, image_id)
        if state != "available":
            raise click.ClickException(f"{image_id} is {state}: {reason}")
    if public:
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})
    return image_id


def wait_available(ec2: Any, image_id: str) -> tuple[str, str]:
    deadline = time.monotonic() + WAIT_SECONDS
    with console.status(f"waiting for {image_id} to become available"):
        while time.monotonic() < deadline:
            image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
            if image["State"] != "pending":
                return image["State"], image.get("StateReason", {}).get("Message", "")
            time.sleep(0.5)
    return "pending", "timed out waiting"


@click.group("image")
def image() -> None:
    """Machine images, kernels and ramdisks (euca-install-image and friends)."""


@image.command("install")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(KINDS), default="machine", show_default=True)
@click.option("--name", default=None, help="The image's name (default: the file's name).")
@click.option("--kernel", default=None, metavar="EKI", help="Kernel of a machine image.")
@click.option("--ramdisk", default=None, metavar="ERI", help="Ramdisk of a machine image.")
@click.option("--bucket", default=None, help="Bucket for the bundle (made if missing).")
@click.option("--public", is_flag=True, help="Let every account launch the image.")
@click.option("--arch", "architecture", type=click.Choice(["x86_64", "i386"]), default="x86_64")
@click.option(
    "--rc",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An rc file with the credentials (default: the AWS environment, else karrirc).",
)
@click.option("--no-wait", is_flag=True, help="Return once registered (still pending).")
def install_command(
    file: Path,
    kind: str,
    name: str | None,
    kernel: str | None,
    ramdisk: str | None,
    bucket: str | None,
    public: bool,
    architecture: str,
    rc: Path | None,
    no_wait: bool,
) -> None:
    """Bundle FILE, upload it with a progress bar and register it; prints the image id."""
    if kind != "machine" and (kernel or ramdisk):
        raise click.UsageError("--kernel and --ramdisk go with --kind machine")
    image_id = install(
        file,
        kind,
        name,
        kernel,
        ramdisk,
        bucket,
        public,
        architecture,
        endpoint_from(rc),
        wait=not no_wait,
    )
    click.echo(image_id)


def cloud_cert(data_dir: Path) -> None:
    from karri.cloud.certs import CERT_FILE

    path = data_dir / CERT_FILE
    if not path.exists():
        raise click.ClickException(f"no cloud certificate in {data_dir}: start the cloud once")
    sys.stdout.write(path.read_text())
