"""A registration that a SIGKILL interrupts resumes when `karri up` starts again."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.conftest import start_karri, stop_karri
from tests.integration.test_images import upload_bundle, wait_image


def test_pending_registration_resumes_after_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    karri = start_karri(data, "--no-default-images")
    try:
        image = os.urandom(8 << 20) + b"\0" * (120 << 20)
        location = upload_bundle(karri, karri.admin, tmp_path, image, bucket="restart-test")
        ec2 = karri.client("ec2")
        image_id = ec2.register_image(ImageLocation=location, Name="survivor")["ImageId"]
        karri.process.send_signal(signal.SIGKILL)
        karri.process.wait()
    finally:
        stop_karri(karri)
    # what a default-image build cut short leaves: a scratch folder, not only files
    scratch = data / "images" / "tmp" / "tmpbuild"
    scratch.mkdir(parents=True)
    (scratch / "rootfs.img").write_bytes(b"half")
    again = start_karri(data, "--no-default-images")
    try:
        image = wait_image(again.client("ec2"), image_id, timeout=180)
        assert image["State"] == "available", image
        leftovers = list((data / "walrus" / "tmp").glob("*"))
        assert leftovers == []
        assert not scratch.exists()
    finally:
        stop_karri(again)
