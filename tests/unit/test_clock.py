"""The working-time clock (services/clock.py) against DOMAIN.md §2."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.clock import (
    MINUTES_PER_DAY,
    TZ,
    FixedClock,
    SystemClock,
    VietnamCivilService,
    WorkingCalendar,
    default_calendar,
    load_calendar,
    timeliness,
)
from services.errors import CatalogError

CAL = default_calendar()


def vn(text: str) -> datetime:
    """'2025-01-24 09:30' (or with seconds) as an aware Asia/Ho_Chi_Minh datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def d(text: str) -> date:
    return date.fromisoformat(text)


def _days(first: str, last: str) -> list[date]:
    lo, hi = d(first), d(last)
    return [lo + timedelta(days=n) for n in range((hi - lo).days + 1)]


# ---------------------------------------------------------------------------------------------
# Hand-checked due instants (due_at_receipt)
# ---------------------------------------------------------------------------------------------

HAND_CHECKED = [
    # The brief's "known answer" said 08:30, but 09:30–11:30 + 13:30–17:30 on Friday is 6 h, not
    # 7 h: 2400 - 360 = 2040 = 4 days (3–6/2) + 2 h -> 7/2 09:30. Same time of day, 5 working
    # days later, Tết 27/1–31/1 skipped.
    ("2025-01-24 09:30", "5", "2025-02-07 09:30"),
    # ... and the brief's decomposition (Friday 7 h, 4 full days + 1 h) is a receipt at 08:30.
    ("2025-01-24 08:30", "5", "2025-02-07 08:30"),
    # Tết 2024 (8/2–14/2 off): Wed 7/2 10:00 + 3 days -> 15/2, 16/2, 19/2.
    ("2024-02-07 10:00", "3", "2024-02-19 10:00"),
    # After 15:00 before Tết 2025: count starts Mon 3/2 07:30; 1 day lands on 17:30 and stays.
    ("2025-01-24 15:30", "1", "2025-02-03 17:30"),
    # Tết 2026 (16/2–20/2 off): Fri 13/2 14:00 (before 15:00) + 2 days -> Mon 23/2, Tue 24/2.
    ("2026-02-13 14:00", "2", "2026-02-24 14:00"),
    # 29/4–1/5/2024 off, Saturday 4/5/2024 is worked: Fri 26/4 + 3 -> 2/5, 3/5, Sat 4/5.
    ("2024-04-26 10:00", "3", "2024-05-04 10:00"),
    # Hùng Kings 18/4/2024 (Thursday).
    ("2024-04-17 10:00", "1", "2024-04-19 10:00"),
    # Saturday 26/4/2025 is worked.
    ("2025-04-25 09:00", "1", "2025-04-26 09:00"),
    ("2025-04-26 08:00", "0.5", "2025-04-26 14:00"),  # received on the make-up Saturday
    # 30/4, 1/5, 2/5/2025 off: Tue 29/4 + 2 -> Mon 5/5, Tue 6/5.
    ("2025-04-29 09:00", "2", "2025-05-06 09:00"),
    # 1/1 and 2/1/2026 off: Wed 31/12/2025 + 3 -> 5/1, 6/1, 7/1.
    ("2025-12-31 10:00", "3", "2026-01-07 10:00"),
    # Saturday 10/1/2026 is worked: Thu 8/1 + 2 -> Fri 9/1, Sat 10/1.
    ("2026-01-08 10:00", "2", "2026-01-10 10:00"),
    # Same-day procedure received on Saturday 10/1/2026 after 15:00 -> Mon 12/1 17:30.
    ("2026-01-10 16:00", "0", "2026-01-12 17:30"),
    # Saturday 22/8/2026 is worked.
    ("2026-08-21 10:00", "1", "2026-08-22 10:00"),
    # 31/8–2/9/2026 off: Fri 28/8 + 2 -> Thu 3/9, Fri 4/9.
    ("2026-08-28 10:00", "2", "2026-09-04 10:00"),
    # Lunch break: count starts 13:30; 480 min -> next day 11:30 (lands on the period end, stays).
    ("2025-03-10 12:00", "1", "2025-03-11 11:30"),
    # Before opening: count starts 07:30; 1 day -> 17:30 the same day (stays).
    ("2025-03-10 06:45", "1", "2025-03-10 17:30"),
    # Weekend receipt: Mon 10/3 07:30 + 1.5 days -> Tue 11:30.
    ("2025-03-08 10:00", "1.5", "2025-03-11 11:30"),
    # Same-day procedures: before 15:00 -> 17:30 that day; at 15:00 -> next working day 17:30;
    # on a holiday (30/4/2025) -> next working day (Mon 5/5).
    ("2025-03-10 14:59", "0", "2025-03-10 17:30"),
    ("2025-03-10 15:00", "0", "2025-03-11 17:30"),
    ("2025-04-30 09:00", "0", "2025-05-05 17:30"),
    # Half days: 240 minutes.
    ("2025-03-10 09:00", "0.5", "2025-03-10 15:00"),  # 150 before lunch + 90
    ("2025-03-10 14:00", "0.5", "2025-03-11 08:00"),  # 210 on Monday + 30
    ("2025-03-10 10:00", "1.5", "2025-03-11 16:00"),  # 330 on Monday + 390
    ("2025-03-10 09:30", "0.5", "2025-03-10 15:30"),  # 120 before lunch + 120
    # Seconds are kept.
    ("2025-03-10 09:30:15", "1", "2025-03-11 09:30:15"),
]


@pytest.mark.parametrize(("received", "days", "due"), HAND_CHECKED)
def test_due_at_receipt_hand_checked(received: str, days: str, due: str) -> None:
    assert CAL.due_at_receipt(vn(received), Decimal(days)) == vn(due)


def test_due_lands_exactly_on_1130_and_1730() -> None:
    # Half a day from 07:30 is 11:30 (not 13:30); a whole day from 07:30 is 17:30 (not 07:30).
    assert CAL.due_at_receipt(vn("2025-03-10 07:30"), Decimal("0.5")) == vn("2025-03-10 11:30")
    assert CAL.due_at_receipt(vn("2025-03-10 07:30"), Decimal(1)) == vn("2025-03-10 17:30")
    assert CAL.due_at_receipt(vn("2025-03-10 13:30"), Decimal("0.5")) == vn("2025-03-10 17:30")


def test_inputs_in_other_offsets_are_converted() -> None:
    received = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)  # 09:00 in Hà Nội
    due = CAL.due_at_receipt(received, Decimal(1))
    assert due == vn("2025-03-11 09:00")
    assert due.tzinfo is TZ
    # 22:00 UTC on Sunday is 05:00 Monday in Hà Nội: before opening, count from 07:30.
    assert CAL.start_of_count(datetime(2025, 3, 9, 22, 0, tzinfo=UTC)) == vn("2025-03-10 07:30")


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        CAL.due_at_receipt(datetime(2025, 3, 10, 9, 0), Decimal(1))
    with pytest.raises(ValueError, match="naive"):
        timeliness(datetime(2025, 3, 10, 9, 0), vn("2025-03-10 17:30"))
    with pytest.raises(ValueError, match="naive"):
        FixedClock(datetime(2025, 3, 10, 9, 0))


@pytest.mark.parametrize("days", [Decimal("-1"), Decimal("0.001"), Decimal("NaN")])
def test_bad_limits_are_refused(days: Decimal) -> None:
    with pytest.raises(ValueError):
        CAL.due_at_receipt(vn("2025-03-10 09:00"), days)


def test_int_limits_are_accepted() -> None:
    assert CAL.due_at_receipt(vn("2025-03-10 09:00"), 1) == vn("2025-03-11 09:00")


# ---------------------------------------------------------------------------------------------
# Start of the count, next working instant, step dues
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "start"),
    [
        ("2025-03-10 09:00", "2025-03-10 09:00"),
        ("2025-03-10 07:30", "2025-03-10 07:30"),
        ("2025-03-10 07:00", "2025-03-10 07:30"),
        ("2025-03-10 11:30", "2025-03-10 13:30"),
        ("2025-03-10 12:15", "2025-03-10 13:30"),
        ("2025-03-10 14:59:59", "2025-03-10 14:59:59"),
        ("2025-03-10 15:00", "2025-03-11 07:30"),
        ("2025-03-10 17:45", "2025-03-11 07:30"),
        ("2025-03-14 16:00", "2025-03-17 07:30"),  # Friday after 15:00 -> Monday
        ("2025-03-15 09:00", "2025-03-17 07:30"),  # Saturday
        ("2024-05-04 09:00", "2024-05-04 09:00"),  # make-up Saturday: a working day
        ("2026-01-02 09:00", "2026-01-05 07:30"),  # announced day off
    ],
)
def test_start_of_count(received: str, start: str) -> None:
    assert CAL.start_of_count(vn(received)) == vn(start)


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        ("2025-03-10 07:30", "2025-03-10 07:30"),  # a period start is inside
        ("2025-03-10 11:29:59", "2025-03-10 11:29:59"),
        ("2025-03-10 11:30", "2025-03-10 13:30"),  # a period end is not
        ("2025-03-10 13:30", "2025-03-10 13:30"),
        ("2025-03-10 16:00", "2025-03-10 16:00"),  # after 15:00: no cutoff here
        ("2025-03-10 17:30", "2025-03-11 07:30"),
        ("2025-03-14 17:30", "2025-03-17 07:30"),
        ("2025-01-24 18:00", "2025-02-03 07:30"),  # over Tết 2025
    ],
)
def test_next_working_instant(t: str, expected: str) -> None:
    assert CAL.next_working_instant(vn(t)) == vn(expected)


def test_due_after_step_start_has_no_cutoff() -> None:
    entered = vn("2025-03-10 16:00")
    assert CAL.due_after_step_start(entered, Decimal(1)) == vn("2025-03-11 16:00")
    assert CAL.due_after_step_start(entered, Decimal(0)) == vn("2025-03-10 17:30")
    # entered at 17:30 (a period end): the step starts next morning
    assert CAL.due_after_step_start(vn("2025-03-10 17:30"), Decimal(0)) == vn("2025-03-11 17:30")
    assert CAL.due_after_step_start(vn("2025-03-08 10:00"), Decimal(2)) == vn("2025-03-11 17:30")


def test_end_of_working_day() -> None:
    assert CAL.end_of_working_day(d("2025-03-10")) == vn("2025-03-10 17:30")


# ---------------------------------------------------------------------------------------------
# add / between / resume
# ---------------------------------------------------------------------------------------------


def test_add_working_minutes_examples() -> None:
    assert CAL.add_working_minutes(vn("2025-03-10 11:00"), 30) == vn("2025-03-10 11:30")
    assert CAL.add_working_minutes(vn("2025-03-10 11:00"), 31) == vn("2025-03-10 13:31")
    assert CAL.add_working_minutes(vn("2025-03-10 11:30"), 0) == vn("2025-03-10 13:30")
    assert CAL.add_working_minutes(vn("2025-03-14 17:00"), 30) == vn("2025-03-14 17:30")
    assert CAL.add_working_minutes(vn("2025-03-14 17:00"), 31) == vn("2025-03-17 07:31")
    # backwards: ties on a break resolve to the end of the earlier period
    assert CAL.add_working_minutes(vn("2025-03-10 14:00"), -30) == vn("2025-03-10 11:30")
    assert CAL.add_working_minutes(vn("2025-03-10 14:00"), -31) == vn("2025-03-10 11:29")
    assert CAL.add_working_minutes(vn("2025-03-17 08:00"), -30) == vn("2025-03-14 17:30")
    with pytest.raises(TypeError):
        CAL.add_working_minutes(vn("2025-03-10 11:00"), 1.5)  # type: ignore[arg-type]


def test_working_minutes_between_examples() -> None:
    assert CAL.working_minutes_between(vn("2025-03-10 07:00"), vn("2025-03-10 18:00")) == 480
    assert CAL.working_minutes_between(vn("2025-03-10 11:00"), vn("2025-03-10 14:00")) == 60
    assert CAL.working_minutes_between(vn("2025-03-10 14:00"), vn("2025-03-10 11:00")) == -60
    assert CAL.working_minutes_between(vn("2025-03-15 08:00"), vn("2025-03-16 17:00")) == 0
    # over Tết 2025: Friday 24/1 09:30 -> Monday 3/2 09:30 is 6 h + 2 h
    assert CAL.working_minutes_between(vn("2025-01-24 09:30"), vn("2025-02-03 09:30")) == 480
    # sub-minute remainders are dropped
    assert CAL.working_minutes_between(vn("2025-03-10 09:00:00"), vn("2025-03-10 09:00:59")) == 0


def test_resume_due() -> None:
    # positive remaining: restart at the next working instant (Saturday -> Monday 07:30)
    assert CAL.resume_due(vn("2025-03-15 10:00"), 60) == vn("2025-03-17 08:30")
    assert CAL.resume_due(vn("2025-03-12 11:00"), 60) == vn("2025-03-12 14:00")
    # zero: due at the restart instant itself
    assert CAL.resume_due(vn("2025-03-15 10:00"), 0) == vn("2025-03-17 07:30")
    # negative (already overdue when paused): the due stays that much in the past
    assert CAL.resume_due(vn("2025-03-11 10:00"), -60) == vn("2025-03-11 09:00")
    assert CAL.resume_due(vn("2025-03-17 08:30"), -60) == vn("2025-03-14 17:30")
    assert CAL.resume_due(vn("2025-03-15 10:00"), -480) == vn("2025-03-13 17:30")
    for resumed, remaining in [("2025-03-15 10:00", -480), ("2025-03-11 12:00", 700)]:
        due = CAL.resume_due(vn(resumed), remaining)
        restart = CAL.next_working_instant(vn(resumed))
        assert CAL.working_minutes_between(restart, due) == remaining


# ---------------------------------------------------------------------------------------------
# Timeliness
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finished", "expected"),
    [
        ("2025-03-10 17:30", "early"),  # the day before the due date
        ("2025-03-11 07:00", "on_time"),  # due date, before the due instant
        ("2025-03-11 11:30", "on_time"),  # exactly the due instant
        ("2025-03-11 11:30:01", "late"),
        ("2025-03-12 08:00", "late"),
    ],
)
def test_timeliness(finished: str, expected: str) -> None:
    assert timeliness(vn(finished), vn("2025-03-11 11:30")) == expected


def test_timeliness_uses_local_dates() -> None:
    due = vn("2025-03-11 08:00")
    # 23:30 UTC on 10/3 is 06:30 on 11/3 in Hà Nội: the due date, so on time (not early)
    assert timeliness(datetime(2025, 3, 10, 23, 30, tzinfo=UTC), due) == "on_time"
    # 16:30 UTC on 10/3 is 23:30 on 10/3 in Hà Nội: early
    assert timeliness(datetime(2025, 3, 10, 16, 30, tzinfo=UTC), due) == "early"


# ---------------------------------------------------------------------------------------------
# The DOMAIN.md table, row by row
# ---------------------------------------------------------------------------------------------

TABLE_DAYS_OFF = {
    2024: [
        d("2024-01-01"),
        *_days("2024-02-08", "2024-02-14"),
        d("2024-04-18"),
        d("2024-04-29"),
        d("2024-04-30"),
        d("2024-05-01"),
        d("2024-09-02"),
        d("2024-09-03"),
    ],
    2025: [
        d("2025-01-01"),
        *_days("2025-01-27", "2025-01-31"),
        d("2025-04-07"),
        d("2025-04-30"),
        d("2025-05-01"),
        d("2025-05-02"),
        d("2025-09-01"),
        d("2025-09-02"),
    ],
    2026: [
        d("2026-01-01"),
        d("2026-01-02"),
        *_days("2026-02-16", "2026-02-20"),
        d("2026-04-27"),
        d("2026-04-30"),
        d("2026-05-01"),
        d("2026-08-31"),
        d("2026-09-01"),
        d("2026-09-02"),
    ],
}
TABLE_MAKEUP = {
    2024: [d("2024-05-04")],
    2025: [d("2025-04-26")],
    2026: [d("2026-01-10"), d("2026-08-22")],
}


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_domain_table_row(year: int) -> None:
    off = set(TABLE_DAYS_OFF[year])
    makeup = set(TABLE_MAKEUP[year])
    for day in off:
        assert not CAL.is_working_day(day), day
    for day in makeup:
        assert day.weekday() == 5 and CAL.is_working_day(day), day
    # and nothing else differs from "Monday to Friday"
    for day in _days(f"{year}-01-01", f"{year}-12-31"):
        expected = (day.weekday() < 5 and day not in off) or day in makeup
        assert CAL.is_working_day(day) == expected, day


def test_yaml_differs_from_the_package_only_where_announced() -> None:
    # the raw package: its own days off and swaps, Culture Day included
    package_only = WorkingCalendar(set(), set(), announced_years=(), culture_day_off=True)
    differences = {
        day
        for day in _days("2024-01-01", "2026-12-31")
        if CAL.is_working_day(day) != package_only.is_working_day(day)
    }
    # 2/1/2026 off and 10/1/2026 worked (letter 12729/VPCP-KGVX); 24/11/2026 not a day off
    assert differences == {d("2026-01-02"), d("2026-01-10"), d("2026-11-24")}


def test_culture_day_is_working_by_default_and_off_with_the_flag(tmp_path: Path) -> None:
    assert CAL.is_working_day(d("2026-11-24"))
    assert CAL.due_at_receipt(vn("2026-11-23 10:00"), Decimal(1)) == vn("2026-11-24 10:00")
    text = CALENDAR_TEXT.replace("culture_day_off: false", "culture_day_off: true")
    assert text != CALENDAR_TEXT
    flagged = load_calendar(_write(tmp_path, text))
    assert not flagged.is_working_day(d("2026-11-24"))
    assert flagged.due_at_receipt(vn("2026-11-23 10:00"), Decimal(1)) == vn("2026-11-25 10:00")
    # years from the package follow the flag too
    assert CAL.is_working_day(d("2027-11-24"))
    assert not flagged.is_working_day(d("2027-11-24"))


def test_package_base_for_years_without_a_row() -> None:
    # Tết 2027 (4/2–10/2) from the holidays package; 2/9–3/9/2027
    for day in _days("2027-02-04", "2027-02-10"):
        assert not CAL.is_working_day(day)
    assert not CAL.is_working_day(d("2027-09-03"))
    assert CAL.is_working_day(d("2027-02-11"))
    # the package's own swaps (make-up Saturdays) are used for such years
    base = WorkingCalendar(set(), set(), announced_years=())
    assert base.is_working_day(d("2024-05-04")) and not base.is_working_day(d("2024-04-29"))
    # the subclass drops the Culture Day unless asked
    assert date(2026, 11, 24) not in VietnamCivilService(years=2026)
    assert date(2026, 11, 24) in VietnamCivilService(years=2026, culture_day_off=True)


# ---------------------------------------------------------------------------------------------
# The data file
# ---------------------------------------------------------------------------------------------

CALENDAR_TEXT = (Path(__file__).parents[2] / "catalog" / "calendar.yaml").read_text("utf-8")

MINIMAL = """\
years:
  2025:
    days_off: [{days_off}]
    makeup_days: [{makeup}]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("days_off", "makeup", "fragment"),
    [
        ("2025-02-30", "", "years.2025.days_off.0"),  # no such date
        ("2025-13-01", "", "not a valid date"),
        ("20250101", "", "expected a date YYYY-MM-DD"),  # an int, not a date
        ("2024-12-31", "", "not in 2025"),
        ("2025-01-01", "2025-04-25", "not a weekend day"),  # a Friday
        ("2025-01-31..2025-01-27", "", "ends before it starts"),
        ("2025-04-26", "2025-04-26", "both a day off and a make-up day"),
    ],
)
def test_bad_calendar_files_are_refused_clearly(
    tmp_path: Path, days_off: str, makeup: str, fragment: str
) -> None:
    path = _write(tmp_path, MINIMAL.format(days_off=days_off, makeup=makeup))
    with pytest.raises(CatalogError, match=fragment) as caught:
        load_calendar(path)
    assert str(path) in str(caught.value)


def test_unquoted_times_are_refused(tmp_path: Path) -> None:
    text = "cutoff: 15:00\n" + MINIMAL.format(days_off="2025-01-01", makeup="")
    with pytest.raises(CatalogError, match="cutoff"):
        load_calendar(_write(tmp_path, text))


def test_a_new_year_is_a_new_row(tmp_path: Path) -> None:
    text = CALENDAR_TEXT + (
        "\n  2027:\n    days_off: [2027-01-01, 2027-02-04..2027-02-10, 2027-03-01]\n"
        "    makeup_days: [2027-03-06]\n"
    )
    cal = load_calendar(_write(tmp_path, text))
    assert not cal.is_working_day(d("2027-03-01"))
    assert cal.is_working_day(d("2027-03-06"))
    assert cal.is_working_day(d("2027-04-16"))  # Hùng Kings not listed in this made-up row


def test_calendar_settings_from_the_file(tmp_path: Path) -> None:
    text = CALENDAR_TEXT.replace('["07:30", "11:30"]', '["07:00", "11:00"]').replace(
        '["13:30", "17:30"]', '["13:00", "17:00"]'
    )
    cal = load_calendar(_write(tmp_path, text))
    assert cal.minutes_per_day == MINUTES_PER_DAY
    assert cal.due_at_receipt(vn("2025-03-10 06:00"), Decimal(1)) == vn("2025-03-10 17:00")


def test_bad_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        WorkingCalendar(
            set(), set(), periods=((time(7, 30), time(12, 0)), (time(11, 0), time(17, 0)))
        )
    with pytest.raises(ValueError, match="both off and make-up"):
        WorkingCalendar({d("2025-04-26")}, {d("2025-04-26")})


# ---------------------------------------------------------------------------------------------
# Clocks
# ---------------------------------------------------------------------------------------------


def test_fixed_clock() -> None:
    clock = FixedClock(datetime(2025, 3, 10, 2, 0, tzinfo=UTC))
    assert clock.now() == vn("2025-03-10 09:00") and clock.now().tzinfo is TZ
    clock.advance(timedelta(hours=2))
    assert clock.now() == vn("2025-03-10 11:00")
    clock.set(vn("2026-01-01 00:00"))
    assert clock.now() == vn("2026-01-01 00:00")


def test_system_clock_is_aware() -> None:
    now = SystemClock().now()
    assert now.tzinfo is TZ
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_performance_of_a_15_day_limit() -> None:
    import time as _time

    received = vn("2025-01-20 09:30")
    n = 2000
    began = _time.perf_counter()
    for i in range(n):
        CAL.due_at_receipt(received + timedelta(minutes=i), Decimal(15))
    per_call = (_time.perf_counter() - began) / n
    assert per_call < 1e-3, per_call


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

OFFSETS = st.sampled_from([TZ, UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9))])
instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2027, 6, 30), timezones=OFFSETS
).map(lambda t: t.replace(microsecond=0))
minute_instants = instants.map(lambda t: t.replace(second=0))
limits = st.integers(0, 60).map(lambda n: Decimal(n) / 2)
positive_limits = st.integers(1, 60).map(lambda n: Decimal(n) / 2)


def _on_working_time(t: datetime, *, allow_end: bool = True) -> bool:
    """On a working day, inside a period (a start counts) or exactly at a period end."""
    t = t.astimezone(TZ)
    if not CAL.is_working_day(t.date()):
        return False
    now = t.timetz().replace(tzinfo=None)
    return any(start <= now < end or (allow_end and now == end) for start, end in CAL.periods)


@settings(max_examples=300, deadline=None)
@given(instants, limits)
def test_due_is_on_working_time(received: datetime, days: Decimal) -> None:
    due = CAL.due_at_receipt(received, days)
    assert due.tzinfo is TZ
    assert _on_working_time(due)
    assert due > received or (days == 0 and due >= received)


@settings(max_examples=200, deadline=None)
@given(instants, instants, limits)
def test_due_is_monotonic_in_received_at(a: datetime, b: datetime, days: Decimal) -> None:
    a, b = min(a, b), max(a, b)
    assert CAL.due_at_receipt(a, days) <= CAL.due_at_receipt(b, days)


@settings(max_examples=200, deadline=None)
@given(instants, positive_limits, positive_limits)
def test_due_is_monotonic_in_days(received: datetime, x: Decimal, y: Decimal) -> None:
    x, y = min(x, y), max(x, y)
    assert CAL.due_at_receipt(received, x) <= CAL.due_at_receipt(received, y)
    # a same-day procedure (0) is due at 17:30 of the start day: never after a 1+ day limit
    # (but it may be after a half-day one: 08:00 + 240 min is 14:00)
    if y >= 1:
        assert CAL.due_at_receipt(received, Decimal(0)) <= CAL.due_at_receipt(received, y)


@settings(max_examples=200, deadline=None)
@given(instants, positive_limits)
def test_due_is_start_plus_the_limit(received: datetime, days: Decimal) -> None:
    start = CAL.start_of_count(received)
    due = CAL.due_at_receipt(received, days)
    assert CAL.working_minutes_between(start, due) == days * MINUTES_PER_DAY
    assert CAL.working_minutes_between(received, due) == days * MINUTES_PER_DAY or (
        received.astimezone(TZ).time() >= time(15, 0)
    )


@settings(max_examples=300, deadline=None)
@given(instants, st.integers(-20 * MINUTES_PER_DAY, 20 * MINUTES_PER_DAY))
def test_add_between_round_trip(start: datetime, minutes: int) -> None:
    result = CAL.add_working_minutes(start, minutes)
    assert CAL.working_minutes_between(start, result) == minutes
    assert _on_working_time(result)
    if minutes > 0:
        assert result > start
        # earliest instant: a minute less is not enough
        assert CAL.working_minutes_between(start, result - timedelta(minutes=1)) < minutes
    elif minutes < 0:
        assert result < start


@settings(max_examples=200, deadline=None)
@given(minute_instants, minute_instants, minute_instants)
def test_between_is_additive(a: datetime, b: datetime, c: datetime) -> None:
    ab = CAL.working_minutes_between(a, b)
    bc = CAL.working_minutes_between(b, c)
    assert ab + bc == CAL.working_minutes_between(a, c)
    assert CAL.working_minutes_between(b, a) == -ab


@settings(max_examples=200, deadline=None)
@given(instants, st.integers(1, 5000), st.integers(1, 5000))
def test_adds_compose(start: datetime, m1: int, m2: int) -> None:
    once = CAL.add_working_minutes(start, m1 + m2)
    twice = CAL.add_working_minutes(CAL.add_working_minutes(start, m1), m2)
    assert once == twice


@settings(max_examples=200, deadline=None)
@given(instants)
def test_next_working_instant_and_start_of_count(t: datetime) -> None:
    nxt = CAL.next_working_instant(t)
    assert nxt >= t
    assert _on_working_time(nxt, allow_end=False)
    assert CAL.next_working_instant(nxt) == nxt
    assert CAL.working_minutes_between(t, nxt) == 0
    start = CAL.start_of_count(t)
    assert start >= nxt and _on_working_time(start, allow_end=False)


@settings(max_examples=300, deadline=None)
@given(instants, instants)
def test_timeliness_is_consistent(finished: datetime, due: datetime) -> None:
    verdict = timeliness(finished, due)
    local_f, local_d = finished.astimezone(TZ), due.astimezone(TZ)
    assert (verdict == "late") == (finished > due)
    assert (verdict == "early") == (local_f.date() < local_d.date())
    if verdict == "on_time":
        assert local_f.date() == local_d.date() and finished <= due
    assert timeliness(due, due) == "on_time"


@settings(max_examples=100, deadline=None)
@given(instants, st.integers(-3000, 3000))
def test_resume_due_keeps_the_remaining_time(resumed: datetime, remaining: int) -> None:
    due = CAL.resume_due(resumed, remaining)
    restart = CAL.next_working_instant(resumed)
    assert CAL.working_minutes_between(restart, due) == remaining
    assert (due > restart) == (remaining > 0)


@settings(max_examples=300, deadline=None)
@given(minute_instants, minute_instants)
def test_between_counts_every_working_day_once(a: datetime, b: datetime) -> None:
    """The working days between two instants come from running counts per year (not a day at a
    time): the same as counting each day, across year ends, holidays and make-up days."""
    a, b = sorted((a.astimezone(TZ), b.astimezone(TZ)))
    day, whole_days = a.date() + timedelta(days=1), 0
    while day < b.date():
        whole_days += CAL.is_working_day(day)
        day += timedelta(days=1)
    if a.date() == b.date():
        expected = CAL.working_minutes_between(a, b)  # within one day: no day counted
    else:
        to_close = CAL.working_minutes_between(a, CAL.end_of_working_day(a.date()))
        since_open = CAL.working_minutes_between(datetime.combine(b.date(), time(0), TZ), b)
        expected = to_close + whole_days * MINUTES_PER_DAY + since_open
        assert expected >= 0
    assert CAL.working_minutes_between(a, b) == expected
