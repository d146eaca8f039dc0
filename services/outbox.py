"""The outbox: side effects written in the transition's own transaction, delivered afterwards.

Rows are claimed in batches by one worker at a time (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
on SQLite the claiming UPDATE runs in a ``BEGIN IMMEDIATE`` transaction, which holds the write
lock, so the same statement is atomic there too). A claim carries a lease: a row whose worker
died is claimed again once its lease has run out. Each delivery carries the outbox id as its
idempotency key, so a crash between the delivery and ``done`` re-delivers and the receiver's
dedupe makes it exactly-once in effect. A failure moves ``available_at`` forward
(exponential backoff); after ``max_attempts`` the row is dead-lettered and the supervisors
are alerted (an outbox row of its own).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from services.context import Context
from storage.models import Outbox

PENDING, CLAIMED, DONE, DEAD = "pending", "claimed", "done", "dead"
ALERT_KIND = "notify_internal"  # deadline notices and dead-letter alerts to officers


def idempotency_key(outbox_id: int) -> str:
    """The key sent with every delivery of one outbox row (the receiver dedupes on it)."""
    return f"motcua-outbox-{outbox_id}"


@dataclass(frozen=True)
class OutboxConfig:
    batch_size: int = 100
    max_attempts: int = 8
    backoff_s: float = 5.0
    backoff_max_s: float = 3600.0
    lease_s: float = 120.0
    concurrency: int = 16
    supervisor_email: str = "giamsat@motcua.langson.gov.vn"

    @classmethod
    def from_settings(cls, settings: Any) -> OutboxConfig:
        return cls(
            batch_size=settings.outbox_batch_size,
            max_attempts=settings.outbox_max_attempts,
            backoff_s=settings.outbox_backoff_s,
            backoff_max_s=settings.outbox_backoff_max_s,
            lease_s=settings.outbox_lease_s,
            concurrency=settings.outbox_concurrency,
            supervisor_email=settings.supervisor_email,
        )

    def backoff(self, attempts: int) -> timedelta:
        """Delay before the next attempt after ``attempts`` failed ones (with 10 % jitter)."""
        base = min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempts - 1))
        return timedelta(seconds=base * random.uniform(0.9, 1.1))


@dataclass(frozen=True)
class Claimed:
    """One claimed row, as a delivery sees it (plain data, no session)."""

    id: int
    kind: str
    target: str | None
    payload: dict[str, Any]
    dossier_id: int | None
    attempts: int
    created_at: datetime

    @property
    def key(self) -> str:
        return idempotency_key(self.id)


class DeliveryError(Exception):
    """A delivery that did not go through; retried with backoff."""


class PermanentDeliveryError(DeliveryError):
    """A delivery that cannot succeed (no endpoint, refused as invalid): dead-lettered at once."""


Deliver = Callable[[Claimed], None]


@dataclass(frozen=True)
class Outcome:
    item: Claimed
    error: str | None = None
    permanent: bool = False


@dataclass
class BatchReport:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    lost_lease: int = 0

    def add(self, other: BatchReport) -> None:
        self.claimed += other.claimed
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        self.lost_lease += other.lost_lease


_table = Outbox.__table__  # type: ignore[attr-defined]


def _due(now: datetime) -> Any:
    return or_(
        and_(_table.c.status == PENDING, _table.c.available_at <= now),
        and_(_table.c.status == CLAIMED, _table.c.lease_until < now),
    )


def has_due(ctx: Context) -> bool:
    """Whether any row is due (a cheap check before starting a flow run)."""
    now = ctx.clock.now()
    with ctx.engine.connect() as conn:
        return conn.execute(select(_table.c.id).where(_due(now)).limit(1)).first() is not None


def claim_batch(ctx: Context, worker: str, config: OutboxConfig) -> list[Claimed]:
    """Claim up to ``batch_size`` due rows for ``worker`` (attempts counted at the claim, so a
    row that crashes its worker every time still ends in the dead letters)."""
    now = ctx.clock.now()
    lease = now + timedelta(seconds=config.lease_s)
    candidates = (
        select(_table.c.id)
        .where(_due(now))
        .order_by(_table.c.available_at, _table.c.id)
        .limit(config.batch_size)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite: the BEGIN IMMEDIATE lock
        .cte("due_rows")
        # evaluated once: inlined as "id IN (subquery)", PostgreSQL may rescan the subquery
        # and claim more than ``batch_size`` rows
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    statement = (
        update(_table)
        .where(_table.c.id == candidates.c.id, _due(now))
        .values(
            status=CLAIMED,
            claimed_by=worker,
            lease_until=lease,
            attempts=_table.c.attempts + 1,
        )
        .returning(
            _table.c.id,
            _table.c.kind,
            _table.c.target,
            _table.c.payload,
            _table.c.dossier_id,
            _table.c.attempts,
            _table.c.created_at,
        )
    )
    with ctx.engine.begin() as conn:
        rows = conn.execute(statement).all()
    items = [
        Claimed(
            id=r.id,
            kind=r.kind,
            target=r.target,
            payload=r.payload or {},
            dossier_id=r.dossier_id,
            attempts=r.attempts,
            created_at=r.created_at,
        )
        for r in rows
    ]
    items.sort(key=lambda i: i.id)
    return items


@dataclass
class Dispatcher:
    """Delivers claimed rows by kind, several at once (HTTP and SMTP calls wait on the wire)."""

    deliverers: Mapping[str, Deliver]
    concurrency: int = 16
    # optional per kind: called once with the batch's rows of that kind before delivery
    # (e.g. to read all their dossiers in one query)
    preparers: Mapping[str, Callable[[Sequence[Claimed]], None]] = field(default_factory=dict)
    # kinds whose rows for one dossier must arrive in order (e.g. the portal's status codes)
    ordered_kinds: frozenset[str] = frozenset({"portal_sync"})
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def _one(self, item: Claimed) -> Outcome:
        deliver = self.deliverers.get(item.kind)
        if deliver is None:
            return Outcome(item, f"no deliverer for kind {item.kind!r}", permanent=True)
        try:
            deliver(item)
        except PermanentDeliveryError as error:
            return Outcome(item, f"{type(error).__name__}: {error}"[:2000], permanent=True)
        except Exception as error:  # a glitch: retried with backoff
            return Outcome(item, f"{type(error).__name__}: {error}"[:2000])
        return Outcome(item)

    def deliver(self, items: Sequence[Claimed]) -> list[Outcome]:
        for kind, prepare in self.preparers.items():
            mine = [i for i in items if i.kind == kind]
            if mine:
                # preparing is an optimisation: a delivery loads what it misses
                with contextlib.suppress(Exception):
                    prepare(mine)
        if len(items) <= 1 or self.concurrency <= 1:
            return [self._one(i) for i in sorted(items, key=lambda i: i.id)]
        # rows of an ordered kind for one dossier go out one after the other, oldest first
        groups: dict[tuple[str, int], list[Claimed]] = {}
        for item in sorted(items, key=lambda i: i.id):
            dossier_id = item.dossier_id
            ordered = item.kind in self.ordered_kinds and dossier_id is not None
            key = (item.kind, dossier_id if ordered and dossier_id is not None else -item.id)
            groups.setdefault(key, []).append(item)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="outbox")
        results = self._pool.map(lambda group: [self._one(i) for i in group], groups.values())
        return [outcome for group in results for outcome in group]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def settle(
    ctx: Context, worker: str, outcomes: Sequence[Outcome], config: OutboxConfig
) -> BatchReport:
    """Mark delivered rows done, schedule retries, dead-letter the hopeless ones.

    Every update is fenced by ``claimed_by = worker``: a worker that lost its lease changes
    nothing (the row was claimed again and will be delivered again, deduped by its key)."""
    now = ctx.clock.now()
    report = BatchReport(claimed=len(outcomes))
    done_ids = [o.item.id for o in outcomes if o.error is None]
    with ctx.engine.begin() as conn:
        if done_ids:
            result = conn.execute(
                update(_table)
                .where(
                    _table.c.id.in_(done_ids),
                    _table.c.claimed_by == worker,
                    _table.c.status == CLAIMED,
                )
                .values(status=DONE, delivered_at=now, lease_until=None, last_error=None)
            )
            report.delivered = result.rowcount
            report.lost_lease += len(done_ids) - result.rowcount
        for outcome in outcomes:
            if outcome.error is None:
                continue
            item = outcome.item
            dead = outcome.permanent or item.attempts >= config.max_attempts
            values: dict[str, Any] = {"last_error": outcome.error, "lease_until": None}
            if dead:
                values["status"] = DEAD
            else:
                values.update(status=PENDING, available_at=now + config.backoff(item.attempts))
            result = conn.execute(
                update(_table)
                .where(
                    _table.c.id == item.id,
                    _table.c.claimed_by == worker,
                    _table.c.status == CLAIMED,
                )
                .values(**values)
            )
            if result.rowcount == 0:
                report.lost_lease += 1
            elif dead:
                report.dead += 1
                if item.kind != ALERT_KIND:
                    conn.execute(
                        _table.insert().values(**_dead_letter_alert(item, outcome, now, config))
                    )
            else:
                report.retried += 1
    return report


def _dead_letter_alert(
    item: Claimed, outcome: Outcome, now: datetime, config: OutboxConfig
) -> dict[str, Any]:
    return {
        "dossier_id": item.dossier_id,
        "kind": ALERT_KIND,
        "target": "supervisor",
        "payload": {
            "template": "dead_letter",
            "to": [config.supervisor_email],
            "outbox_id": item.id,
            "outbox_kind": item.kind,
            "outbox_target": item.target,
            "code": item.payload.get("code"),
            "attempts": item.attempts,
            "error": outcome.error,
        },
        "status": PENDING,
        "attempts": 0,
        "created_at": now,
        "available_at": now,
    }


def drain_batch(
    ctx: Context, worker: str, dispatcher: Dispatcher, config: OutboxConfig
) -> BatchReport:
    """Claim one batch, deliver it, settle it."""
    items = claim_batch(ctx, worker, config)
    if not items:
        return BatchReport()
    return settle(ctx, worker, dispatcher.deliver(items), config)


def drain(
    ctx: Context,
    worker: str,
    dispatcher: Dispatcher,
    config: OutboxConfig,
    *,
    max_batches: int = 1_000_000,
) -> BatchReport:
    """Drain batches until nothing is due (or ``max_batches``)."""
    total = BatchReport()
    for _ in range(max_batches):
        report = drain_batch(ctx, worker, dispatcher, config)
        total.add(report)
        if report.claimed == 0:
            break
    return total


@dataclass(frozen=True)
class DeadLetter:
    id: int
    kind: str
    target: str | None
    code: str | None
    attempts: int
    created_at: datetime
    last_error: str | None


def dead_letters(ctx: Context, *, limit: int = 1000) -> list[DeadLetter]:
    """Rows that will not be retried any more, newest first."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(_table).where(_table.c.status == DEAD).order_by(_table.c.id.desc()).limit(limit)
        ).all()
    return [
        DeadLetter(
            id=r.id,
            kind=r.kind,
            target=r.target,
            code=(r.payload or {}).get("code"),
            attempts=r.attempts,
            created_at=r.created_at,
            last_error=r.last_error,
        )
        for r in rows
    ]


def requeue_dead(ctx: Context, ids: Sequence[int]) -> int:
    """Give dead letters another round of attempts (after the cause was fixed)."""
    now = ctx.clock.now()
    with ctx.engine.begin() as conn:
        result = conn.execute(
            update(_table)
            .where(_table.c.id.in_(list(ids)), _table.c.status == DEAD)
            .values(status=PENDING, attempts=0, available_at=now, claimed_by=None)
        )
    return int(result.rowcount)


def counts(ctx: Context) -> dict[str, int]:
    """Rows per status."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(_table.c.status, func.count()).group_by(_table.c.status)).all()
    return {status: int(n) for status, n in rows}


__all__ = [
    "CLAIMED",
    "DEAD",
    "DONE",
    "PENDING",
    "BatchReport",
    "Claimed",
    "DeadLetter",
    "DeliveryError",
    "Dispatcher",
    "OutboxConfig",
    "PermanentDeliveryError",
    "claim_batch",
    "counts",
    "dead_letters",
    "drain",
    "drain_batch",
    "has_due",
    "idempotency_key",
    "requeue_dead",
    "settle",
]
