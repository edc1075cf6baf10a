"""The cloud starts, answers a signed call from boto3 and the AWS CLI, and stops."""

from tests.conftest import Karri


def test_describe_regions_with_boto3(karri: Karri) -> None:
    regions = karri.client("ec2").describe_regions()["Regions"]
    assert [r["RegionName"] for r in regions] == ["eucalyptus"]


def test_describe_regions_with_aws_cli(karri: Karri) -> None:
    out = karri.aws("ec2", "describe-regions")
    assert out["Regions"][0]["Endpoint"] == karri.ec2_url


def test_karrirc_is_private_and_complete(karri: Karri) -> None:
    rc = karri.data_dir / "karrirc"
    assert rc.stat().st_mode & 0o077 == 0
    text = rc.read_text()
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "EC2_URL",
        "S3_URL",
        "AWS_ENDPOINT_URL_S3_CONTROL",
        "AWS_DATA_PATH",
    ):
        assert f"export {name}=" in text
