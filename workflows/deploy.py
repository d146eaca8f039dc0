"""Running the flows.

Embedded default: ``start_embedded_workers(ctx)`` starts daemon threads in the server process
(the outbox drain loop, the deadline watch, the digitization pipeline), against Prefect's
local ephemeral API — no extra service. ``stop()`` ends them.

Production: ``motcua worker`` calls :func:`serve_deployments`, which serves the deployments
against the Prefect server named by ``PREFECT_API_URL`` (a Prefect server on PostgreSQL); run
as many workers on as many machines as needed — outbox claims use ``SKIP LOCKED`` and deadline
notices a unique key, so they never double up.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from services.context import Context
from services.settings import Settings, get_settings
from storage.objects import ObjectStore
from workflows.deadlines import deadline_loop, deadline_watch
from workflows.digitization import digitization_loop, digitize_documents
from workflows.handoffs import build_runtime, configure, drain_loop, drain_outbox

WORKING_HOURS_CRON = "*/10 7-17 * * 1-6"  # Asia/Ho_Chi_Minh; the watch skips non-working days


@dataclass
class EmbeddedWorkers:
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout)

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)


def start_embedded_workers(
    ctx: Context,
    settings: Settings | None = None,
    *,
    drain: bool = True,
    deadlines: bool = True,
    digitize: bool = True,
    store: ObjectStore | None = None,
    poll_s: float | None = None,
    watch_interval_s: float | None = None,
) -> EmbeddedWorkers:
    """Background threads draining the outbox, watching deadlines and digitizing uploads in
    this process (``store``: the app's object store; else the one the settings describe)."""
    configure(build_runtime(ctx, settings or get_settings(), store=store))
    workers = EmbeddedWorkers()
    if drain:
        workers.threads.append(
            threading.Thread(
                target=drain_loop,
                args=(workers.stop_event,),
                kwargs={"poll_s": poll_s},
                name="motcua-drain-outbox",
                daemon=True,
            )
        )
    if deadlines:
        workers.threads.append(
            threading.Thread(
                target=deadline_loop,
                args=(workers.stop_event,),
                kwargs={"interval_s": watch_interval_s},
                name="motcua-deadline-watch",
                daemon=True,
            )
        )
    if digitize:
        workers.threads.append(
            threading.Thread(
                target=digitization_loop,
                args=(workers.stop_event,),
                name="motcua-digitize-documents",
                daemon=True,
            )
        )
    for thread in workers.threads:
        thread.start()
    return workers


def serve_deployments(*, drain_interval_s: int = 5, batch_size: int | None = None) -> None:
    """Serve ``drain-outbox`` (every few seconds, one sweep per run) and ``deadline-watch``
    (working hours) against the Prefect API of ``PREFECT_API_URL``; blocks."""
    from prefect import serve
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Cron, Interval

    deployments = [
        drain_outbox.to_deployment(
            name="motcua-drain-outbox",
            schedule=Interval(drain_interval_s),
            parameters={"batch_size": batch_size, "max_batches": 200},
        ),
        deadline_watch.to_deployment(
            name="motcua-deadline-watch",
            schedule=Cron(WORKING_HOURS_CRON, timezone="Asia/Ho_Chi_Minh"),
        ),
        digitize_documents.to_deployment(name="motcua-digitize-documents", schedule=Interval(30)),
    ]
    serve(*[d for d in deployments if isinstance(d, RunnerDeployment)])


__all__ = ["EmbeddedWorkers", "serve_deployments", "start_embedded_workers"]
