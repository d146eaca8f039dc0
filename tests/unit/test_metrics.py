"""The arithmetic of the on-time report: exact half-up rate, period buckets, totals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.metrics import (
    OnTimeRow,
    format_rate,
    on_time_rate,
    period_bounds,
    period_buckets,
    total,
)


def test_rate_is_half_up_to_two_decimals_and_empty_without_finished() -> None:
    assert on_time_rate(0, 0, 0) is None
    assert format_rate(on_time_rate(0, 0, 0)) == ""
    assert on_time_rate(1, 1, 3) == Decimal("66.67")  # 66.666…
    assert on_time_rate(0, 1, 8) == Decimal("12.50")
    assert on_time_rate(1, 0, 16) == Decimal("6.25")  # exact, no rounding
    assert on_time_rate(0, 1, 200) == Decimal("0.50")
    # 0.005 boundary: 1/400*100 = 0.25; 199/200 = 99.5; 1999/2000*100 = 99.95; 19999/20000 = 99.995
    assert on_time_rate(19999, 0, 20000) == Decimal("100.00")  # half-up, not banker's
    assert on_time_rate(3, 0, 8) == Decimal("37.50")
    assert format_rate(on_time_rate(1, 0, 1)) == "100.00"
    assert format_rate(on_time_rate(0, 0, 5)) == "0.00"


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_rate_matches_exact_fraction(early: int, on_time: int, late: int) -> None:
    finished = early + on_time + late
    rate = on_time_rate(early, on_time, finished)
    if finished == 0:
        assert rate is None
        return
    assert rate is not None
    # |rate - exact| <= 0.005 and ties go up: 2*(100*(e+o)*100) vs (2*rate*100 ± 1)*finished
    exact_hundredths_x2 = 2 * 100 * 100 * (early + on_time)
    cents = int(rate * 100)
    assert (2 * cents - 1) * finished <= exact_hundredths_x2 < (2 * cents + 1) * finished


def test_period_bounds_are_local_whole_days() -> None:
    lo, hi = period_bounds(date(2025, 1, 1), date(2025, 3, 31))
    assert lo.isoformat() == "2025-01-01T00:00:00+07:00"
    assert hi.isoformat() == "2025-04-01T00:00:00+07:00"


def test_period_buckets_cover_the_range_without_overlap() -> None:
    months = period_buckets(date(2025, 1, 15), date(2025, 3, 10), "month")
    assert months == [
        (date(2025, 1, 15), date(2025, 1, 31)),
        (date(2025, 2, 1), date(2025, 2, 28)),
        (date(2025, 3, 1), date(2025, 3, 10)),
    ]
    quarters = period_buckets(date(2024, 11, 1), date(2025, 7, 1), "quarter")
    assert [q[0] for q in quarters] == [
        date(2024, 11, 1), date(2025, 1, 1), date(2025, 4, 1), date(2025, 7, 1),
    ]  # fmt: skip
    weeks = period_buckets(date(2025, 3, 5), date(2025, 3, 17), "week")
    assert weeks[0] == (date(2025, 3, 5), date(2025, 3, 9))  # Wednesday → Sunday
    assert weeks[-1] == (date(2025, 3, 17), date(2025, 3, 17))
    years = period_buckets(date(2024, 6, 1), date(2025, 2, 1), "year")
    assert years == [(date(2024, 6, 1), date(2024, 12, 31)), (date(2025, 1, 1), date(2025, 2, 1))]
    assert len(period_buckets(date(2025, 1, 1), date(2025, 1, 31), "day")) == 31


def test_total_adds_every_count() -> None:
    rows = [OnTimeRow("a", 3, 3, 1, 1, 1, 1, 0, 0), OnTimeRow("b", 4, 2, 0, 1, 1, 1, 1, 1)]
    t = total(rows)
    assert t.counts() == (7, 5, 1, 2, 2, 2, 1, 1)
    assert t.on_time_rate == Decimal("60.00")
