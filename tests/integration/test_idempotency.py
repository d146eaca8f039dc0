"""``Idempotency-Key``: the use case and its stored answer commit in one transaction.

A dossier without its stored answer (a crash in between) used to leave the key ``pending``
and every retry refused with 409; now neither is written without the other, and a retry runs."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from services.context import Context
from services.idempotency import IdempotencyMismatch, StoredResponse, run_once
from states.lifecycle import Actor
from storage.models import Dossier
from storage.models_api import IdempotencyRecord
from tests.conftest import criminal_record

CENTRE = "000.00.01.H37"
COUNTER = Actor("motcua1", "counter", CENTRE)


def receive(ctx: Context) -> StoredResponse:
    dossier = criminal_record(ctx, COUNTER, CENTRE)
    return StoredResponse(201, {"code": dossier.code, "version": dossier.version}, {})


def count(ctx: Context, model: type) -> int:
    with ctx.uow() as uow:
        return int(uow.session.execute(select(func.count()).select_from(model)).scalar_one())


def test_the_answer_is_replayed_and_the_use_case_runs_once(ctx: Context) -> None:
    first, replayed = run_once(ctx, "motcua1", "k1", "POST x", "h", lambda: receive(ctx))
    again, replayed_again = run_once(ctx, "motcua1", "k1", "POST x", "h", lambda: receive(ctx))
    assert (replayed, replayed_again) == (False, True)
    assert again == first and first.body["version"] == 2
    assert count(ctx, Dossier) == 1
    with pytest.raises(IdempotencyMismatch):
        run_once(ctx, "motcua1", "k1", "POST x", "other body", lambda: receive(ctx))
    # the key is per officer
    _, replayed_other = run_once(ctx, "motcua2", "k1", "POST x", "h", lambda: receive(ctx))
    assert not replayed_other and count(ctx, Dossier) == 2


def test_a_failure_after_the_use_case_leaves_neither_dossier_nor_key(ctx: Context) -> None:
    def receive_then_crash() -> StoredResponse:
        receive(ctx)  # its unit of work "commits": joined, it only writes
        raise RuntimeError("the process dies before the answer is stored")

    with pytest.raises(RuntimeError):
        run_once(ctx, "motcua1", "k2", "POST x", "h", receive_then_crash)
    assert count(ctx, Dossier) == 0 and count(ctx, IdempotencyRecord) == 0
    # the retry runs (no 409 for a key left pending), and gets the day's number back
    answer, replayed = run_once(ctx, "motcua1", "k2", "POST x", "h", lambda: receive(ctx))
    assert not replayed and count(ctx, Dossier) == 1
    assert answer.body["code"].endswith("0001")


def test_concurrent_duplicates_run_the_use_case_once(ctx: Context) -> None:
    runs: list[str] = []
    answers: list[tuple[StoredResponse, bool]] = []
    errors: list[BaseException] = []

    def slow_receive() -> StoredResponse:
        runs.append(threading.current_thread().name)
        time.sleep(0.3)  # the twin arrives meanwhile and waits on the key
        return receive(ctx)

    def request() -> None:
        try:
            answers.append(run_once(ctx, "motcua1", "k3", "POST x", "h", slow_receive))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(runs) == 1
    assert sorted(replayed for _, replayed in answers) == [False, True]
    assert answers[0][0] == answers[1][0]
    assert count(ctx, Dossier) == 1
