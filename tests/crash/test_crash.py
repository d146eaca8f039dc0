"""Crash and fault tests, short version of ``python -m benchmarks.crash`` (same machinery).

Every service its own process: a private PostgreSQL cluster, moto's S3 server behind a relay,
the stand-in agency, ``motcua serve``, ``motcua worker`` (a Prefect server for its flow runs).
Under load, the API and the worker are SIGKILLed three times each at random moments; every
acknowledged transition must then be in the database, no dossier half-moved, every outbox row
delivered under its one key. PostgreSQL is restarted under load (503 + Retry-After, then
recovery, nothing lost); the S3 endpoint is stopped (503, no row without its object) and
started again (uploads work)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from benchmarks.crash import (
    Rig,
    rig,
    run_kills,
    run_postgres_restart,
    run_s3_stop,
    verify,
    wait_drained,
)

KILLS = 2  # the suite's short version; `python -m benchmarks.crash --kills 20` is the full run


@pytest.fixture(scope="module")
def crash_rig() -> Iterator[Rig]:
    with rig() as r:
        yield r


@pytest.fixture(scope="module")
def acknowledged() -> list:  # the acknowledged transitions of every test of the module
    return []


def test_sigkill_of_api_and_worker_under_load_loses_nothing(
    crash_rig: Rig, acknowledged: list
) -> None:
    seed = random.randrange(1_000_000)
    report, load, v = run_kills(crash_rig, kills=KILLS, threads=2, seed=seed)
    acknowledged.extend(load.tally.acks)
    context = f"seed {seed}: {v.missing[:5]} {v.half_moved[:5]} {load.tally.anomalies[:5]}"
    assert (report.api_kills, report.worker_kills) == (KILLS, KILLS)
    assert report.worker_kills_while_delivering == KILLS  # each after it had claimed rows
    assert v.acknowledged > 50, context
    assert v.found == v.acknowledged, context
    assert v.missing == [] and v.half_moved == [], context
    assert load.tally.anomalies == [] and load.tally.unavailable_bad == [], context
    assert v.outbox_status.keys() == {"done"}, v.outbox_status
    assert v.dead_letters == 0
    assert v.sent_rows > 0 and v.keys_received == v.sent_rows
    assert (v.keys_missing, v.keys_unknown, v.duplicate_deliveries) == (0, 0, 0)
    assert v.inbox_missing == 0


def test_postgres_restart_under_load_answers_503_then_recovers(
    crash_rig: Rig, acknowledged: list
) -> None:
    report, load = run_postgres_restart(
        crash_rig, threads=2, before_s=1.0, outage_s=2.0, after_s=1.0
    )
    assert report.answers_during["503"] > 0, report.answers_during
    assert report.bad_503 == [] and report.other_5xx == 0, report
    assert report.recovered_after_s is not None and report.recovered_after_s < 10, report
    assert load.tally.anomalies == []
    wait_drained(crash_rig.engine, timeout=60)
    acknowledged.extend(load.tally.acks)
    v = verify(crash_rig, acknowledged)
    assert v.found == v.acknowledged and v.missing == [] and v.half_moved == [], v
    assert v.dead_letters == 0 and v.duplicate_deliveries == 0 and v.keys_missing == 0


def test_s3_endpoint_stopped_then_started(crash_rig: Rig) -> None:
    report = run_s3_stop(crash_rig, uploads=1)
    assert report.before == [201]
    assert report.during == [503] and report.bad_503 == [], report
    assert report.cut_mid_body in (503, 422), report  # a clean refusal, nothing stored
    assert report.after == [201], report
    assert report.rows == report.uploads_acknowledged == 2
    assert report.rows_without_object == 0
