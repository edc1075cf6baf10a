"""The lifecycle job runs passes on its own, survives a failing one, and stops."""

from __future__ import annotations

import threading
from datetime import datetime

from karri.cloud.lifecycle_job import LifecycleJob


def test_passes_repeat_after_a_failure_until_stopped() -> None:
    calls: list[datetime] = []
    enough = threading.Event()

    def apply(now: datetime) -> dict[str, int]:
        calls.append(now)
        if len(calls) >= 3:
            enough.set()
        if len(calls) == 1:
            raise RuntimeError("a failing pass")
        return {}

    job = LifecycleJob(apply, interval=0.01)
    job.start()
    assert enough.wait(30)
    job.stop()
    count = len(calls)
    assert all(when.tzinfo is not None for when in calls)
    assert len(calls) == count  # nothing after stop
