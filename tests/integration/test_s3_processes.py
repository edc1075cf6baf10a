"""Several processes serve the S3 port: they share one store and behave as one server."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Karri, start_karri, stop_karri
from tests.integration.guests import alive, wait_for
from tests.integration.s3_helpers import http, preflight, unique

PROCESSES = 3


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Karri]:
    instance = start_karri(
        tmp_path_factory.mktemp("processes") / "data",
        "--s3-processes", str(PROCESSES), "--no-default-images",
    )  # fmt: skip
    yield instance
    stop_karri(instance)


def s3_pids(karri: Karri) -> list[int]:
    with urllib.request.urlopen(f"{karri.ec2_url}/karri/health", timeout=5) as reply:
        return json.loads(reply.read())["s3_processes"]


def serving_processes(karri: Karri, bucket: str, key: str, tries: int = 60) -> set[str]:
    """Request-id prefixes (one per process) seen over fresh connections."""
    seen = set()
    for _ in range(tries):
        _status, headers, _body = http("GET", f"{karri.s3_url}/{bucket}/{key}")
        seen.add(headers["x-amz-request-id"][:8])
    return seen


def test_every_process_serves_and_sees_acl_changes_at_once(cloud: Karri) -> None:
    wait_for("every S3 process", lambda: len(s3_pids(cloud)) == PROCESSES, 30)
    s3 = cloud.client("s3")
    bucket = unique("procs")
    s3.create_bucket(Bucket=bucket, ObjectOwnership="ObjectWriter")  # ACLs on
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", ACL="public-read")
    wait_for(
        "answers from each", lambda: len(serving_processes(cloud, bucket, "k", 20)) == PROCESSES, 30
    )
    for _ in range(5):  # the answer follows the change on whichever process serves it
        s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
        assert {http("GET", f"{cloud.s3_url}/{bucket}/k")[0] for _ in range(6)} == {403}
        s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
        assert {http("GET", f"{cloud.s3_url}/{bucket}/k")[0] for _ in range(6)} == {200}
    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)
    assert {http("HEAD", f"{cloud.s3_url}/{bucket}")[0] for _ in range(6)} == {404}


def test_every_process_answers_cors_preflights_alike(cloud: Karri) -> None:
    """A bucket's CORS rules reach every process as soon as they change."""
    s3 = cloud.client("s3")
    bucket = unique("cors")
    s3.create_bucket(Bucket=bucket)
    url, origin = f"{cloud.s3_url}/{bucket}/k", "https://app.test"
    asked = {"Origin": origin, "Access-Control-Request-Method": "PUT"}

    def answers() -> tuple[set[int], set[str]]:
        replies = [preflight(url, asked) for _ in range(24)]
        return {r[0] for r in replies}, {r[1]["x-amz-request-id"][:8] for r in replies}

    wait_for("answers from each", lambda: len(answers()[1]) == PROCESSES, 30)
    rules = [{"AllowedOrigins": [origin], "AllowedMethods": ["PUT"]}]
    for _ in range(3):
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
        assert answers()[0] == {200}
        s3.delete_bucket_cors(Bucket=bucket)
        assert answers()[0] == {403}


def test_concurrent_versions_from_every_process(cloud: Karri) -> None:
    s3 = cloud.client("s3", max_pool_connections=16)
    bucket = unique("versions")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket=bucket, Key="v", Body=b"%d" % i), range(64)))
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert len(versions) == 64
    assert sum(version["IsLatest"] for version in versions) == 1
    latest = next(v for v in versions if v["IsLatest"])
    newest = s3.get_object(Bucket=bucket, Key="v", VersionId=latest["VersionId"])
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == newest["Body"].read()


def test_if_none_match_lets_exactly_one_writer_create(cloud: Karri) -> None:
    """PUT with If-None-Match: * is checked as the write commits, in whichever process:
    racing writers once all got 200 and all but one lost their object."""
    s3 = cloud.client("s3", max_pool_connections=16)
    bucket = unique("create-once")
    s3.create_bucket(Bucket=bucket)

    def create(body: bytes) -> str:
        try:
            s3.put_object(Bucket=bucket, Key="once", Body=body, IfNoneMatch="*")
        except ClientError as error:
            return error.response["Error"]["Code"]
        return "written"

    for size in (100, 300_000):  # a small body (kept in its row) and a file
        s3.delete_object(Bucket=bucket, Key="once")
        bodies = [(b"%d." % i) * (size // 3) for i in range(16)]
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(create, bodies))
        assert outcomes.count("written") == 1, outcomes
        # a loser is 412 if the key existed when it came, 409 if the winner committed
        # while its body came (AWS's ConditionalRequestConflict)
        losers = set(outcomes) - {"written"}
        assert losers <= {"PreconditionFailed", "ConditionalRequestConflict"}, outcomes
        stored = s3.get_object(Bucket=bucket, Key="once")["Body"].read()
        assert stored == bodies[outcomes.index("written")]


def test_a_killed_process_is_replaced(cloud: Karri) -> None:
    wait_for("every S3 process", lambda: len(s3_pids(cloud)) == PROCESSES, 30)
    main, *workers = s3_pids(cloud)
    os.kill(workers[0], signal.SIGKILL)
    wait_for(
        "a new S3 process",
        lambda: len(s3_pids(cloud)) == PROCESSES and workers[0] not in s3_pids(cloud),
        30,
    )
    assert s3_pids(cloud)[0] == main
    s3 = cloud.client("s3")
    bucket = unique("after")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"still here")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"still here"


def test_workers_end_with_karri(tmp_path: Path) -> None:
    karri = start_karri(tmp_path / "data", "--s3-processes", "2", "--no-default-images")
    try:
        wait_for("the S3 worker", lambda: len(s3_pids(karri)) == 2, 30)
        worker = s3_pids(karri)[1]
    finally:
        stop_karri(karri)
    wait_for("the worker to end", lambda: not alive(worker), 10)

    karri = start_karri(tmp_path / "data", "--s3-processes", "2", "--no-default-images")
    wait_for("the S3 worker", lambda: len(s3_pids(karri)) == 2, 30)
    worker = s3_pids(karri)[1]
    karri.process.kill()  # kill -9: the worker must not outlive it
    karri.process.wait()
    wait_for("the worker to end", lambda: not alive(worker), 10)
