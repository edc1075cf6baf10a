"""The shell-sourceable credentials file (Eucalyptus's eucarc)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from karri.clientdata import write_client_data
from karri.cloud.accounts import Credentials
from karri.config import Settings


def rc_text(
    credentials: Credentials, region: str, ec2_url: str, s3_url: str, data_path: Path
) -> str:
    """``data_path``: the client data karri wrote (karri.clientdata), for AWS_DATA_PATH."""
    values = {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_DEFAULT_REGION": region,
        "EC2_URL": f"{ec2_url}/",
        "S3_URL": f"{s3_url}/",
        # The AWS CLI and boto3 read these, so no --endpoint-url is needed.
        "AWS_ENDPOINT_URL_EC2": ec2_url,
        "AWS_ENDPOINT_URL_S3": s3_url,
        "AWS_ENDPOINT_URL_S3_CONTROL": s3_url,  # the account's public access block
        "AWS_DATA_PATH": str(data_path),  # s3control without <account>. before the host
        "AWS_ENDPOINT_URL_IAM": f"{ec2_url}/services/Euare",
        "AWS_ENDPOINT_URL_STS": f"{ec2_url}/services/Tokens",
        # euca2ools 2 and other Eucalyptus-era tools.
        "EC2_ACCESS_KEY": credentials.access_key_id,
        "EC2_SECRET_KEY": credentials.secret_access_key,
        "EC2_ACCOUNT_NUMBER": credentials.account_id,
        "KARRI_ACCOUNT": credentials.account_name,
    }
    lines = [
        f"# karri credentials for account {credentials.account_name} ({credentials.account_id})"
    ]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def write_account_rc(path: Path, credentials: Credentials, settings: Settings) -> None:
    """An account's rc file for this cloud, and the client data it names."""
    data_path = write_client_data(settings.data_dir)
    text = rc_text(credentials, settings.region, settings.ec2_url, settings.s3_url, data_path)
    write_rc(path, text)


def write_rc(path: Path, text: str) -> None:
    """Written private (0600) and atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)
