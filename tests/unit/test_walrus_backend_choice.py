"""`karri up --walrus-backend`: the choice is kept in the data dir for later starts and
CLI commands, and a data dir whose objects live in one backend is not started on another."""

from __future__ import annotations

from pathlib import Path

from karri.cli.common import settings_for
from karri.config import Settings
from tests.unit.karri_up import served, up

__all__ = ["served"]  # the fixture


def test_the_backend_is_kept_for_later_starts(tmp_path: Path, served: list[Settings]) -> None:
    flags = ["--walrus-backend", "rados", "--ceph-conf", "/etc/c.conf", "--rados-pool", "p"]
    assert up(tmp_path, *flags).exit_code == 0
    assert up(tmp_path).exit_code == 0
    for settings in (*served, settings_for(tmp_path)):
        assert (settings.walrus_backend, settings.ceph_conf) == ("rados", "/etc/c.conf")
        assert (settings.rados_pool, settings.ceph_user) == ("p", "admin")


def test_a_data_dir_is_not_started_on_another_backend(
    tmp_path: Path, served: list[Settings]
) -> None:
    assert up(tmp_path / "a", "--walrus-backend", "rados").exit_code == 0
    refused = up(tmp_path / "a", "--walrus-backend", "files")
    assert refused.exit_code != 0 and "kept in rados" in refused.output
    (tmp_path / "b" / "walrus").mkdir(parents=True)  # objects in files, from before
    assert up(tmp_path / "b", "--walrus-backend", "rados").exit_code != 0
    assert up(tmp_path / "b").exit_code == 0
    assert [s.walrus_backend for s in served] == ["rados", "files"]
