"""Decision 766 indicators on the hand-made history (catalog/examples/import-example.jsonl) plus
one dossier asked twice for supplementation: rates and points computed by hand."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from services.clock import TZ
from services.context import Context
from services.importer import import_file, import_lines
from services.indicators766 import (
    PROVINCE,
    digitization_indicators,
    online_indicator,
    points,
    progress_indicator,
    score_card,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "catalog" / "examples" / "import-example.jsonl"
NOW = datetime(2025, 4, 15, 9, 0, tzinfo=TZ)
Q1 = (date(2025, 1, 1), date(2025, 3, 31))


def _twice_supplemented() -> str:
    def ev(event: str, at: str, role: str, **extra: str) -> dict[str, str]:
        return {"event": event, "at": f"2025-03-{at}:00+07:00", "role": role, **extra}

    return json.dumps(
        {
            "ref": "LLTP-2025-0200", "procedure": "MOJ.lltp", "unit": "000.00.01.H37",
            "channel": "counter", "received_at": "2025-03-17T08:00:00+07:00",
            "applicant": {"name": "Hà Văn Hai"},
            "events": [
                ev("forward", "17T09:00", "counter"),
                ev("request_supplement", "18T09:00", "specialist", reason="Thiếu tờ khai"),
                ev("supplement", "19T09:00", "counter"),
                ev("request_supplement", "20T09:00", "specialist", reason="Thiếu ủy quyền"),
                ev("supplement", "21T09:00", "counter"),
                ev("forward", "21T10:00", "specialist"),
                ev("forward", "24T10:00", "system"),
                ev("approve", "25T10:00", "leader"),
                ev("mark_result_ready", "25T11:00", "leader"),
            ],
        },
        ensure_ascii=False,
    )  # fmt: skip


def test_points_follow_the_threshold_rule() -> None:
    assert points(Decimal("40"), 6, 80) == Decimal("3.00")  # below: rate × max / threshold
    assert points(Decimal("85"), 6, 80) == Decimal("6.00")  # at or above: full points
    assert points(Decimal("66.67"), 20) == Decimal("13.33")  # no threshold: proportional
    assert points(None, 20) is None


def test_766_indicators_by_hand(ctx: Context) -> None:
    assert import_file(ctx, EXAMPLE).imported == 9
    extra = import_lines(ctx, [_twice_supplemented()])
    assert extra.imported == 1, extra.refused
    with ctx.uow() as uow:
        s = uow.session
        progress = progress_indicator(s, *Q1, now=NOW, calendar=ctx.calendar)
        # Justice: finished 4 (2 early incl. the twice-supplemented one, 1 on time, 1 late);
        # the twice-supplemented one counts late → 2; + 1 open within time (paused) + 1 refused
        # at the counter (ended) = 4 of 4 + 1 + 1 = 6
        justice = progress["000.00.02.H37"]
        assert (justice.part, justice.whole, justice.rate) == (4, 6, Decimal("66.67"))
        assert justice.points == Decimal("13.33")
        # district: 1 on time of 2 finished, 1 open overdue, 1 withdrawn (ended): 2 of 4
        district = progress["000.01.31.H37"]
        assert (district.part, district.whole, district.points) == (2, 4, Decimal("10.00"))
        province = progress[PROVINCE]
        assert (province.part, province.whole, province.rate) == (6, 10, Decimal("60.00"))

        online = online_indicator(s, *Q1)
        # Justice received 4 in Q1, one online: 25% of the 50% threshold → 6 of 12 points
        assert (online["000.00.02.H37"].rate, online["000.00.02.H37"].points) == (
            Decimal("25.00"),
            Decimal("6.00"),
        )
        assert (online[PROVINCE].part, online[PROVINCE].whole) == (2, 8)

        digitization = digitization_indicators(s, *Q1)
        assert [i.whole for i in digitization[PROVINCE]] == [6, 6, 6, 6]  # finished in Q1
        assert all(i.part == 0 for i in digitization[PROVINCE])  # no document stored

        cards = {c.agency: c for c in score_card(s, *Q1, now=NOW, calendar=ctx.calendar)}
        assert list(cards)[-1] == PROVINCE
        assert cards["000.00.02.H37"].points == Decimal("13.33") + Decimal("6.00")
