"""``drain-outbox``: the Prefect flow that delivers the outbox (handoffs, inter-agency calls,
notifications, portal sync).

One flow run per sweep (up to ``max_batches`` batches), one task run per batch of
``batch_size`` rows — never a flow run per dossier. The flow only calls services; the
dossier's legal state lives in the database, never in a paused flow. Flows find what they need
(context, deliverers, configuration) in the process's :class:`Runtime`, set by
``configure`` (embedded threads, ``motcua worker``) or built from the settings on first use (a
deployment's flow run in a fresh process).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    temporary_settings,
)

from services.agencies import AgencyClient, AgencyDirectory
from services.context import Context
from services.deadlines import DeadlineConfig
from services.notifications import Notifier, NotifierConfig
from services.outbox import (
    ALERT_KIND,
    BatchReport,
    Dispatcher,
    OutboxConfig,
    drain_batch,
    has_due,
)
from services.portal_sync import PORTAL_SYNC, PortalClient
from services.settings import Settings, get_settings
from storage.objects import ObjectStore


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class Runtime:
    """What the flows of this process work with."""

    ctx: Context
    settings: Settings
    outbox: OutboxConfig
    deadline: DeadlineConfig
    dispatcher: Dispatcher
    worker: str = field(default_factory=worker_id)
    store: ObjectStore | None = None  # for the digitization pipeline (else from the settings)
    _closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        self.dispatcher.close()
        for closer in self._closers:
            closer.close()


def build_runtime(
    ctx: Context, settings: Settings | None = None, *, store: ObjectStore | None = None
) -> Runtime:
    settings = settings or get_settings()
    notifier = Notifier(ctx, NotifierConfig.from_settings(settings))
    agencies = AgencyClient(
        ctx,
        AgencyDirectory.from_settings(settings),
        callback_base_url=settings.public_base_url,
        timeout_s=settings.outbox_http_timeout_s,
    )
    portal = PortalClient(settings.portal_endpoint, timeout_s=settings.outbox_http_timeout_s)
    outbox = OutboxConfig.from_settings(settings)
    dispatcher = Dispatcher(
        {
            "handoff": notifier.deliver_handoff,
            "inter_agency": agencies.deliver,
            "notify_citizen": notifier.deliver_citizen,
            ALERT_KIND: notifier.deliver_internal,
            PORTAL_SYNC: portal.deliver,
        },
        concurrency=outbox.concurrency,
        preparers={"inter_agency": agencies.prepare},
    )
    return Runtime(
        ctx=ctx,
        settings=settings,
        outbox=outbox,
        deadline=DeadlineConfig.from_settings(settings),
        dispatcher=dispatcher,
        store=store,
        _closers=[notifier, agencies, portal],
    )


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def configure(runtime: Runtime) -> Runtime:
    """Make ``runtime`` the one the flows of this process use."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None and _runtime is not runtime:
            _runtime.close()
        _runtime = runtime
    return runtime


def current_runtime() -> Runtime:
    """The configured runtime, or one built from the settings (a deployment's flow run)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            from services.catalog import default_catalog, load_catalog
            from storage.db import make_engine, migrate

            settings = get_settings()
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            engine = make_engine(settings.effective_database_url)
            migrate(engine)
            catalog = (
                load_catalog(settings.catalog_dir) if settings.catalog_dir else default_catalog()
            )
            _runtime = build_runtime(Context(engine=engine, catalog=catalog), settings)
        return _runtime


def reset_runtime() -> None:
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.close()
        _runtime = None


@contextlib.contextmanager
def quiet_prefect() -> Iterator[None]:
    """No flow-run heartbeat: it costs every sync flow run about a second (STACK.md)."""
    updates: dict[Any, Any] = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    if not PREFECT_API_URL.value():
        # the local ephemeral API takes 7–20 s to start on a busy 2-core machine
        updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = max(
            120, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
        )
    with temporary_settings(updates=updates):
        yield


@task(name="deliver-batch", cache_policy=NO_CACHE, persist_result=False)
def deliver_batch(batch_size: int) -> dict[str, int]:
    """Claim one batch, deliver it, settle it (one task run per batch)."""
    runtime = current_runtime()
    config = runtime.outbox
    if batch_size != config.batch_size:
        config = OutboxConfig(**{**asdict(config), "batch_size": batch_size})
    report = drain_batch(runtime.ctx, runtime.worker, runtime.dispatcher, config)
    return asdict(report)


@flow(name="drain-outbox", persist_result=False)
def drain_outbox(batch_size: int | None = None, max_batches: int = 20) -> dict[str, int]:
    """Deliver due outbox rows, batch after batch, until none is due (or ``max_batches``)."""
    runtime = current_runtime()
    size = batch_size or runtime.outbox.batch_size
    total = BatchReport()
    for _ in range(max_batches):
        report = BatchReport(**deliver_batch(size))
        total.add(report)
        if report.claimed < size:
            break
    return asdict(total)


def drain_loop(
    stop: threading.Event,
    *,
    batch_size: int | None = None,
    max_batches: int = 20,
    poll_s: float | None = None,
) -> None:
    """Run ``drain-outbox`` whenever rows are due; a cheap check first, so an idle system
    starts no flow runs."""
    runtime = current_runtime()
    wait = runtime.settings.outbox_poll_s if poll_s is None else poll_s
    with quiet_prefect():
        while not stop.is_set():
            try:
                busy = has_due(runtime.ctx)
                if busy:
                    report = drain_outbox(batch_size=batch_size, max_batches=max_batches)
                    if report["claimed"] >= (batch_size or runtime.outbox.batch_size):
                        continue  # more may be waiting
            except Exception:  # the database or Prefect away for a moment: try again
                import logging

                logging.getLogger("motcua.workflows").exception("drain-outbox failed")
            stop.wait(wait)


__all__ = [
    "Runtime",
    "build_runtime",
    "configure",
    "current_runtime",
    "deliver_batch",
    "drain_loop",
    "drain_outbox",
    "quiet_prefect",
    "reset_runtime",
]
