"""The retry schedule of background work that keeps failing."""

from __future__ import annotations

from karri.backoff import Backoff


def test_a_failing_job_waits_longer_each_time_and_a_success_forgets() -> None:
    now = [100.0]
    backoff = Backoff(5.0, 60.0, clock=lambda: now[0])
    assert not backoff.waiting("vol-1")
    expected = [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    for delay in expected:
        backoff.record("vol-1", failed=True)
        now[0] += delay - 0.1
        assert backoff.waiting("vol-1")
        assert not backoff.waiting("vol-2")
        now[0] += 0.2
        assert not backoff.waiting("vol-1")
    backoff.record("vol-1", failed=True)
    backoff.record("vol-1", failed=False)
    assert not backoff.waiting("vol-1")
    backoff.record("vol-1", failed=True)
    now[0] += 5.1
    assert not backoff.waiting("vol-1")  # counted from the start again
