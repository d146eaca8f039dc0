"""``deadline-watch``: one flow run per sweep over the running clocks (scheduled in working
hours by ``motcua worker``; every few minutes in the embedded default)."""

from __future__ import annotations

import logging
import threading

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from services.deadlines import watch
from workflows.handoffs import current_runtime, quiet_prefect

log = logging.getLogger("motcua.workflows")


@task(name="scan-deadlines", cache_policy=NO_CACHE, persist_result=False)
def scan_deadlines() -> dict[str, int]:
    runtime = current_runtime()
    report = watch(runtime.ctx, runtime.deadline)
    return {"scanned": report.scanned, **report.fired}


@flow(name="deadline-watch", persist_result=False)
def deadline_watch() -> dict[str, int]:
    """Record and notify every deadline threshold crossed for the first time."""
    return scan_deadlines()


def deadline_loop(stop: threading.Event, *, interval_s: float | None = None) -> None:
    runtime = current_runtime()
    wait = runtime.settings.deadline_watch_interval_s if interval_s is None else interval_s
    with quiet_prefect():
        while not stop.is_set():
            try:
                if runtime.ctx.calendar.is_working_day(runtime.ctx.clock.now().date()):
                    deadline_watch()
            except Exception:
                log.exception("deadline-watch failed")
            stop.wait(wait)


__all__ = ["deadline_loop", "deadline_watch", "scan_deadlines"]
