"""`karri up --ebs-backend`: the choice is kept in the data dir, later runs find it, and a
data dir's volumes never silently change backend."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from karri.cli.common import settings_for
from karri.cli.main import _ebs_settings
from karri.config import saved_ebs


def test_the_backend_is_saved_and_found_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    given = _ebs_settings(data, "rbd", "/etc/ceph/ceph.conf", None, "vols")
    assert given == {"ebs_backend": "rbd", "ceph_conf": "/etc/ceph/ceph.conf", "rbd_pool": "vols"}
    assert saved_ebs(data) == given
    assert _ebs_settings(data, None, None, None, None) == given  # a later `karri up`
    settings = settings_for(data)  # the CLI's commands (no runtime.json yet)
    assert (settings.ebs_backend, settings.rbd_pool) == ("rbd", "vols")
    with pytest.raises(click.ClickException, match="kept in rbd"):
        _ebs_settings(data, "files", None, None, None)


def test_volume_files_are_not_moved_to_rbd(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "volumes").mkdir(parents=True)
    assert _ebs_settings(data, None, None, None, None) == {}  # files, the default
    (data / "volumes" / "vol-0123abcd.raw").touch()
    with pytest.raises(click.ClickException, match="kept in files"):
        _ebs_settings(data, "rbd", None, None, None)
