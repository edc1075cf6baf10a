"""karri's s3control endpoint rules: botocore, reading them, sends to karri's address as
given (stock rules put ``<account>.`` before it), and AWS's own endpoints keep the prefix."""

from __future__ import annotations

from pathlib import Path

import boto3
import botocore.session
import pytest

from karri.clientdata import write_client_data

ACCOUNT = "123456789012"


class Sent(Exception):
    pass


def sent_to(data_path: Path | None, endpoint: str | None) -> str:
    session = botocore.session.get_session()
    if data_path is not None:
        session.set_config_variable("data_path", str(data_path))
    client = boto3.Session(botocore_session=session).client(
        "s3control",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )

    def stop(request, **_kwargs) -> None:
        raise Sent(request.url)

    client.meta.events.register("before-send.*", stop)
    with pytest.raises(Sent) as sent:
        client.get_public_access_block(AccountId=ACCOUNT)
    return str(sent.value)


def test_the_account_stays_out_of_a_custom_endpoints_host(tmp_path: Path) -> None:
    endpoint = "http://127.0.0.1:8773"
    path = "/v20180820/configuration/publicAccessBlock"
    assert sent_to(None, endpoint) == f"http://{ACCOUNT}.127.0.0.1:8773{path}"
    data_path = write_client_data(tmp_path)
    assert data_path == tmp_path / "aws-data"
    assert sent_to(data_path, endpoint) == f"{endpoint}{path}"
    assert sent_to(data_path, None).startswith(f"https://{ACCOUNT}.s3-control.us-east-1.")
