"""The data dir's lock taken shared (front ends without a node of their own on
PostgreSQL): the first alone until it shares, the others beside it; a lock taken
exclusively stays so. flock locks belong to each open file, so one process shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from karri import lock as lock_module
from karri.lock import DataDirInUse, DataDirLock, live_holder


@pytest.fixture(autouse=True)
def _short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_module, "SHARE_WAIT", 0.3)


def test_front_ends_share_once_the_first_has_swept(tmp_path: Path) -> None:
    first, second, third = DataDirLock(tmp_path), DataDirLock(tmp_path), DataDirLock(tmp_path)
    first.acquire(shared=True)
    assert first.alone
    with pytest.raises(DataDirInUse):
        second.acquire(shared=True)  # the first is still alone (sweeping)
    first.share()
    second.acquire(shared=True)
    assert not second.alone
    with pytest.raises(DataDirInUse):
        third.acquire()  # karri up with its own node, karri down: exclusive
    for held in (first, second):
        held.release()
    third.acquire()
    third.release()


def test_an_exclusive_lock_is_never_shared(tmp_path: Path) -> None:
    held = DataDirLock(tmp_path)
    held.acquire()
    held.share()  # not taken shared: nothing changes
    assert live_holder(tmp_path) is not None
    with pytest.raises(DataDirInUse):
        DataDirLock(tmp_path).acquire(shared=True)
    held.release()
