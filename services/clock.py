"""The working-time clock: working days, due instants and timeliness (DOMAIN.md §2).

One clock for the whole engine. Everything that needs "is this a working day", "when is this
dossier due" or "was it on time" calls :class:`WorkingCalendar` (usually :func:`default_calendar`).

Working days
    Monday–Friday, minus legal holidays and the government's announced days off, plus the
    announced make-up working days (Saturdays). For a year that has a row in
    ``catalog/calendar.yaml`` that row is the whole truth (days off + make-up days); for any other
    year the ``holidays`` package (:class:`VietnamCivilService`) supplies the base and its known
    swaps. Adding a year is adding data to the YAML file.

    The 24/11 "Vietnam Culture Day" the package lists from 2026 is **not** a day off unless
    ``culture_day_off`` is set (no act making it a day off was found; DOMAIN.md §2).

Working time
    Periods 07:30–11:30 and 13:30–17:30 (configurable). Instants are handled as a day plus an
    exact integer number of microseconds; limits are whole minutes, so arithmetic is exact and
    results keep the second (and sub-second) precision of the input.

Conventions
    * An instant equal to a period start is inside working time; a period end is not
      (11:30 → 13:30, 17:30 → 07:30 of the next working day) — for :meth:`next_working_instant`.
    * Adding working time returns the *earliest* instant that completes it, so a due instant that
      lands exactly on a period end stays there (11:30 or 17:30).
    * Subtracting working time (negative minutes) returns the earliest instant too: a result on a
      break boundary is the end of the earlier period (11:30, or 17:30 of the previous working day).
    * All datetimes must be timezone-aware (naive → ``ValueError``); any offset is accepted and
      results are in ``Asia/Ho_Chi_Minh``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo

import holidays.countries
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from services.errors import CatalogError

__all__ = [
    "MINUTES_PER_DAY",
    "TZ",
    "Clock",
    "FixedClock",
    "SystemClock",
    "Timeliness",
    "VietnamCivilService",
    "WorkingCalendar",
    "default_calendar",
    "load_calendar",
    "timeliness",
]

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
Timeliness = Literal["early", "on_time", "late"]
MINUTES_PER_DAY = 480

CALENDAR_FILE = Path(__file__).parent.parent / "catalog" / "calendar.yaml"
DEFAULT_PERIODS: tuple[tuple[time, time], ...] = (
    (time(7, 30), time(11, 30)),
    (time(13, 30), time(17, 30)),
)
DEFAULT_CUTOFF = time(15, 0)

_US_PER_SECOND = 1_000_000
_US_PER_MINUTE = 60 * _US_PER_SECOND
_ONE_DAY = timedelta(days=1)
_MAX_GAP_DAYS = 3660  # no run of ten years without a working day: a guard against bad data


# ---------------------------------------------------------------------------------------------
# Base holidays: the `holidays` package, with the Culture Day made optional
# ---------------------------------------------------------------------------------------------


class VietnamCivilService(holidays.countries.Vietnam):
    """Legal holidays of the ``holidays`` package, with 24/11 (Vietnam Culture Day) optional.

    ``culture_day_off=False`` (the default) drops 24/11 and any observed day derived from it.
    ``weekend_workdays`` holds the package's known make-up working Saturdays.
    """

    def __init__(self, *args: Any, culture_day_off: bool = False, **kwargs: Any) -> None:
        self.culture_day_off = culture_day_off  # read while the parent populates the years
        super().__init__(*args, **kwargs)

    def _culture_day(self) -> date:
        return date(self._year, 11, 24)

    def _populate_observed(self, dts: set[date], *, multiple: bool = False) -> None:
        if not self.culture_day_off:
            dts = {dt for dt in dts if dt != self._culture_day()}
        super()._populate_observed(dts, multiple=multiple)

    def _populate_public_holidays(self) -> None:
        super()._populate_public_holidays()
        if not self.culture_day_off and dict.__contains__(self, self._culture_day()):
            self.pop(self._culture_day())


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _local(t: datetime) -> datetime:
    """``t`` in Asia/Ho_Chi_Minh; naive input is refused."""
    if not isinstance(t, datetime):
        raise TypeError(f"expected a datetime, got {type(t).__name__}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()}: working-time clock needs a timezone")
    return t.astimezone(TZ)


def _tod_us(t: datetime) -> int:
    """Time of day of a (local) datetime, in microseconds."""
    return ((t.hour * 60 + t.minute) * 60 + t.second) * _US_PER_SECOND + t.microsecond


def _time_us(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * _US_PER_SECOND + t.microsecond


def _at(day: date, us: int) -> datetime:
    seconds, micro = divmod(us, _US_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=TZ)


def _to_decimal(value: Decimal | int) -> Decimal:
    if isinstance(value, bool):
        raise TypeError("working_days must be a number, not a bool")
    return value if isinstance(value, Decimal) else Decimal(str(value))


# ---------------------------------------------------------------------------------------------
# The calendar
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _YearDays:
    off: frozenset[date]
    makeup: frozenset[date]


@dataclass
class _Caches:
    years: dict[int, _YearDays] = field(default_factory=dict)
    working: dict[date, bool] = field(default_factory=dict)
    # per year: working days among its first i days, i = 0 … days in the year
    counts: dict[int, tuple[int, ...]] = field(default_factory=dict)


def _day_of_year(day: date) -> int:
    """0 for 1 January."""
    return day.toordinal() - date(day.year, 1, 1).toordinal()


class WorkingCalendar:
    """Working days and working time of the counting calendar (DOMAIN.md §2).

    ``days_off`` / ``makeup_days``: the announced schedule. They are the whole truth for the
    ``announced_years`` (default: every year that has a date in either set); any other year comes
    from the ``holidays`` package (:class:`VietnamCivilService`). ``culture_day_off`` makes 24/11
    a day off where the package lists it (from 2026), announced years included.
    """

    def __init__(
        self,
        days_off: set[date] | frozenset[date],
        makeup_days: set[date] | frozenset[date],
        *,
        culture_day_off: bool = False,
        periods: tuple[tuple[time, time], ...] = DEFAULT_PERIODS,
        cutoff: time = DEFAULT_CUTOFF,
        announced_years: Iterable[int] | None = None,
    ) -> None:
        both = set(days_off) & set(makeup_days)
        if both:
            raise ValueError(f"dates both off and make-up working days: {sorted(both)}")
        if not periods:
            raise ValueError("at least one working period is needed")
        previous_end = -1
        bounds: list[tuple[int, int]] = []
        for start, end in periods:
            s, e = _time_us(start), _time_us(end)
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError("working periods are local times without tzinfo")
            if not s < e:
                raise ValueError(f"working period {start}–{end} is empty or reversed")
            if s < previous_end:
                raise ValueError(f"working period {start}–{end} overlaps or is out of order")
            previous_end = e
            bounds.append((s, e))
        self.periods: tuple[tuple[time, time], ...] = tuple(periods)
        self.cutoff = cutoff
        self.culture_day_off = culture_day_off
        self._bounds: tuple[tuple[int, int], ...] = tuple(bounds)
        self._day_us = sum(e - s for s, e in bounds)
        if self._day_us % _US_PER_MINUTE:
            raise ValueError("a working day must be a whole number of minutes")
        self.minutes_per_day: int = self._day_us // _US_PER_MINUTE
        self._opening = bounds[0][0]
        self._closing = bounds[-1][1]
        self._cutoff_us = _time_us(cutoff)
        self._days_off = frozenset(days_off)
        self._makeup = frozenset(makeup_days)
        if announced_years is None:
            announced_years = {d.year for d in self._days_off | self._makeup}
        self.announced_years: frozenset[int] = frozenset(announced_years)
        self._caches = _Caches()

    # -- construction from data ---------------------------------------------------------------

    @classmethod
    def from_file(cls, path: Path = CALENDAR_FILE) -> WorkingCalendar:
        """Load ``catalog/calendar.yaml`` (or another file of that shape)."""
        return load_calendar(path)

    # -- working days ---------------------------------------------------------------------------

    def _year(self, year: int) -> _YearDays:
        found = self._caches.years.get(year)
        if found is not None:
            return found
        if year in self.announced_years:
            off = {d for d in self._days_off if d.year == year}
            makeup = {d for d in self._makeup if d.year == year}
            if self.culture_day_off:
                with_day = VietnamCivilService(years=year, culture_day_off=True)
                without = VietnamCivilService(years=year, culture_day_off=False)
                off |= set(with_day) - set(without)
        else:
            base = VietnamCivilService(years=(year, year + 1), culture_day_off=self.culture_day_off)
            off = {d for d in base if d.year == year}
            makeup = {d for d in base.weekend_workdays if d.year == year} - off
        found = _YearDays(frozenset(off), frozenset(makeup))
        self._caches.years[year] = found
        return found

    def is_working_day(self, day: date) -> bool:
        if isinstance(day, datetime):
            day = _local(day).date()
        cached = self._caches.working.get(day)
        if cached is None:
            year = self._year(day.year)
            if day in year.off:
                cached = False
            elif day in year.makeup:
                cached = True
            else:
                cached = day.weekday() < 5
            self._caches.working[day] = cached
        return cached

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        for _ in range(_MAX_GAP_DAYS):
            day += _ONE_DAY
            if self.is_working_day(day):
                return day
        raise RuntimeError(f"no working day within {_MAX_GAP_DAYS} days after {day}")

    def _previous_working_day(self, day: date) -> date:
        for _ in range(_MAX_GAP_DAYS):
            day -= _ONE_DAY
            if self.is_working_day(day):
                return day
        raise RuntimeError(f"no working day within {_MAX_GAP_DAYS} days before {day}")

    # -- working time within a day -------------------------------------------------------------

    def _offset(self, tod: int) -> int:
        """Working microseconds of a working day elapsed before time of day ``tod``."""
        done = 0
        for s, e in self._bounds:
            if tod <= s:
                break
            done += (tod if tod < e else e) - s
        return done

    def _at_offset(self, day: date, offset: int) -> datetime:
        """Earliest instant of ``day`` with ``offset`` working microseconds elapsed (0 < offset)."""
        for s, e in self._bounds:
            length = e - s
            if offset <= length:
                return _at(day, s + offset)
            offset -= length
        raise AssertionError("offset beyond the working day")  # pragma: no cover

    # -- public API -----------------------------------------------------------------------------

    def next_working_instant(self, t: datetime) -> datetime:
        """``t`` itself if inside a working period (a period start is inside, a period end is not);
        otherwise the start of the next working period."""
        t = _local(t)
        day = t.date()
        if self.is_working_day(day):
            tod = _tod_us(t)
            for s, e in self._bounds:
                if tod < e:
                    return t if tod >= s else _at(day, s)
        return _at(self.next_working_day(day), self._opening)

    def start_of_count(self, received_at: datetime) -> datetime:
        """Start of the count for a dossier received at ``received_at`` (DOMAIN.md §2).

        On a working day before the cutoff (15:00): the receipt instant, moved forward to the next
        working instant (before opening, midday break). At or after the cutoff, or on a
        non-working day: the opening (07:30) of the next working day.
        """
        t = _local(received_at)
        if self.is_working_day(t.date()) and _tod_us(t) < self._cutoff_us:
            return self.next_working_instant(t)
        return _at(self.next_working_day(t.date()), self._opening)

    def add_working_minutes(self, start: datetime, minutes: int) -> datetime:
        """Move ``minutes`` of working time from ``start``, skipping non-working time.

        * ``minutes > 0``: the earliest instant ``r`` with exactly ``minutes`` of working time in
          ``[start, r)``; a result on a period end stays there (11:30, 17:30).
        * ``minutes == 0``: ``next_working_instant(start)``.
        * ``minutes < 0``: backwards; the earliest ``r`` with ``-minutes`` of working time in
          ``[r, start)`` (a result on a break boundary is the end of the earlier period).

        In every case ``working_minutes_between(start, result) == minutes``.
        """
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise TypeError(f"minutes must be an int, got {minutes!r}")
        t = _local(start)
        if minutes == 0:
            return self.next_working_instant(t)
        if minutes > 0:
            return self._forward(t, minutes * _US_PER_MINUTE)
        return self._backward(t, -minutes * _US_PER_MINUTE)

    def _forward(self, t: datetime, need: int) -> datetime:
        day = t.date()
        day_us = self._day_us
        if self.is_working_day(day):
            done = self._offset(_tod_us(t))
            if need <= day_us - done:
                return self._at_offset(day, done + need)
            need -= day_us - done
        for _ in range(_MAX_GAP_DAYS + need // day_us):
            day += _ONE_DAY
            if self.is_working_day(day):
                if need <= day_us:
                    return self._at_offset(day, need)
                need -= day_us
        raise RuntimeError("no working time found")  # pragma: no cover

    def _backward(self, t: datetime, need: int) -> datetime:
        day = t.date()
        day_us = self._day_us
        if self.is_working_day(day):
            done = self._offset(_tod_us(t))
            if need < done:
                return self._at_offset(day, done - need)
            need -= done
        for _ in range(_MAX_GAP_DAYS + need // day_us):
            day -= _ONE_DAY
            if self.is_working_day(day):
                if need < day_us:
                    return self._at_offset(day, day_us - need)
                need -= day_us
        raise RuntimeError("no working time found")  # pragma: no cover

    def _working_us(self, a: datetime, b: datetime) -> int:
        """Working microseconds in ``[a, b)`` for local ``a <= b``."""
        da, db = a.date(), b.date()
        oa = self._offset(_tod_us(a)) if self.is_working_day(da) else 0
        ob = self._offset(_tod_us(b)) if self.is_working_day(db) else 0
        if da == db:
            return ob - oa
        total = ob + (self._day_us - oa if self.is_working_day(da) else 0)
        return total + self._day_us * self._working_days_in(da + _ONE_DAY, db)

    def _working_days_in(self, start: date, end: date) -> int:
        """Working days in ``[start, end)`` for ``start <= end``, from each year's running
        counts: a dossier months overdue costs no more than one due tomorrow (counted a day at a
        time, the progress of a worklist's old dossiers was a third of the read's CPU)."""
        first = self._counts(start.year)
        if start.year == end.year:
            return self._counts(end.year)[_day_of_year(end)] - first[_day_of_year(start)]
        total = first[-1] - first[_day_of_year(start)]
        for year in range(start.year + 1, end.year):
            total += self._counts(year)[-1]
        return total + self._counts(end.year)[_day_of_year(end)]

    def _counts(self, year: int) -> tuple[int, ...]:
        found = self._caches.counts.get(year)
        if found is None:
            running = [0]
            day = date(year, 1, 1)
            while day.year == year:
                running.append(running[-1] + self.is_working_day(day))
                day += _ONE_DAY
            found = self._caches.counts[year] = tuple(running)
        return found

    def working_minutes_between(self, a: datetime, b: datetime) -> int:
        """Whole working minutes in ``[a, b)`` (sub-minute remainders are dropped);
        ``-working_minutes_between(b, a)`` when ``b < a``."""
        a, b = _local(a), _local(b)
        if b < a:
            return -(self._working_us(b, a) // _US_PER_MINUTE)
        return self._working_us(a, b) // _US_PER_MINUTE

    def end_of_working_day(self, day: date) -> datetime:
        """End of the last working period (17:30) of ``day``."""
        if isinstance(day, datetime):
            day = _local(day).date()
        return _at(day, self._closing)

    def limit_minutes(self, working_days: Decimal | int) -> int:
        """A limit in working days (halves allowed) as working minutes (1 day = 480 min)."""
        days = _to_decimal(working_days)
        if not days.is_finite() or days < 0:
            raise ValueError(f"a limit must be a non-negative number of working days: {days}")
        minutes = days * self.minutes_per_day
        if minutes != minutes.to_integral_value():
            raise ValueError(f"{days} working days is not a whole number of minutes")
        return int(minutes)

    def due_at_receipt(self, received_at: datetime, working_days: Decimal | int) -> datetime:
        """Due instant of a dossier received at ``received_at`` with a limit of ``working_days``.

        0 days (same-day procedure): the end (17:30) of the day the count starts.
        """
        minutes = self.limit_minutes(working_days)
        start = self.start_of_count(received_at)
        if minutes == 0:
            return self.end_of_working_day(start.date())
        return self._forward(start, minutes * _US_PER_MINUTE)

    def due_after_step_start(self, entered_at: datetime, working_days: Decimal | int) -> datetime:
        """Due instant of a step entered at ``entered_at`` (no 15:00 rule); 0 days → the end of
        the working day the step starts."""
        minutes = self.limit_minutes(working_days)
        start = self.next_working_instant(entered_at)
        if minutes == 0:
            return self.end_of_working_day(start.date())
        return self._forward(start, minutes * _US_PER_MINUTE)

    def resume_due(self, resumed_at: datetime, remaining_minutes: int) -> datetime:
        """New due instant when the clock restarts after supplementation.

        ``add_working_minutes(next_working_instant(resumed_at), remaining_minutes)`` for every
        ``remaining_minutes``: 0 → the restart instant itself; negative (the dossier was already
        overdue when paused) → that much working time *before* the restart instant, so the due
        stays in the past and ``working_minutes_between(restart, due) == remaining_minutes``.
        """
        return self.add_working_minutes(self.next_working_instant(resumed_at), remaining_minutes)


# ---------------------------------------------------------------------------------------------
# Timeliness
# ---------------------------------------------------------------------------------------------


def timeliness(finished_at: datetime, due_at: datetime) -> Timeliness:
    """Early before the due date (local dates); on time on the due date up to the due instant;
    late after the due instant (DOMAIN.md §2)."""
    finished, due = _local(finished_at), _local(due_at)
    if finished > due:
        return "late"
    if finished.date() < due.date():
        return "early"
    return "on_time"


# ---------------------------------------------------------------------------------------------
# The data file
# ---------------------------------------------------------------------------------------------


def _iso_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"expected a date YYYY-MM-DD, got a date and time {value}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"not a valid date YYYY-MM-DD: {value!r} ({exc})") from None
    raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")


def _clock_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a quoted time 'HH:MM', got {value!r}")


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
ClockTime = Annotated[time, BeforeValidator(_clock_time)]


def _expand(items: Any) -> Any:
    """Accept ``"2024-02-08..2024-02-14"`` ranges (inclusive) among single dates."""
    if not isinstance(items, list):
        return items
    out: list[Any] = []
    for item in items:
        if isinstance(item, str) and ".." in item:
            first, _, last = item.partition("..")
            lo, hi = _iso_date(first), _iso_date(last)
            if hi < lo:
                raise ValueError(f"range {item!r} ends before it starts")
            out.extend(lo + timedelta(days=n) for n in range((hi - lo).days + 1))
        else:
            out.append(item)
    return out


class _YearSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    days_off: list[IsoDate]
    makeup_days: list[IsoDate] = Field(default_factory=list)
    source: str = ""

    @field_validator("days_off", "makeup_days", mode="before")
    @classmethod
    def _expand_ranges(cls, value: Any) -> Any:
        return _expand(value)


class _CalendarFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    culture_day_off: StrictBool = False
    working_periods: list[tuple[ClockTime, ClockTime]] = Field(
        default_factory=lambda: list(DEFAULT_PERIODS)
    )
    cutoff: ClockTime = DEFAULT_CUTOFF
    years: dict[int, _YearSchedule]

    @model_validator(mode="after")
    def _check(self) -> _CalendarFile:
        for year, row in self.years.items():
            for kind, days in (("days_off", row.days_off), ("makeup_days", row.makeup_days)):
                for d in days:
                    if d.year != year:
                        raise ValueError(f"years.{year}.{kind}: {d} is not in {year}")
            for d in row.makeup_days:
                if d.weekday() < 5:
                    raise ValueError(
                        f"years.{year}.makeup_days: {d} is a {d:%A}, not a weekend day"
                    )
                if d in row.days_off:
                    raise ValueError(f"years.{year}: {d} is both a day off and a make-up day")
        return self


class _NoTimestampLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings, so that pydantic reports bad ones clearly."""


_NoTimestampLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_calendar(path: Path = CALENDAR_FILE) -> WorkingCalendar:
    """Read and validate a calendar file; a bad file raises :class:`CatalogError` naming the
    file and the field."""
    try:
        # a SafeLoader subclass: safe
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoTimestampLoader)
    except OSError as exc:
        raise CatalogError.bad_file(path, "(file)", str(exc)) from None
    except yaml.YAMLError as exc:
        raise CatalogError.bad_file(path, "(YAML)", str(exc)) from None
    try:
        data = _CalendarFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise CatalogError.bad_file(path, location, first["msg"]) from None
    days_off = {d for row in data.years.values() for d in row.days_off}
    makeup = {d for row in data.years.values() for d in row.makeup_days}
    return WorkingCalendar(
        days_off,
        makeup,
        culture_day_off=data.culture_day_off,
        periods=tuple(data.working_periods),
        cutoff=data.cutoff,
        announced_years=data.years.keys(),
    )


@functools.cache
def default_calendar() -> WorkingCalendar:
    """The calendar of ``catalog/calendar.yaml``, loaded once."""
    return load_calendar(CALENDAR_FILE)


# ---------------------------------------------------------------------------------------------
# Clocks ("now")
# ---------------------------------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The real time, aware, in Asia/Ho_Chi_Minh."""

    def now(self) -> datetime:
        return datetime.now(TZ)


class FixedClock:
    """A settable clock for tests and replays."""

    def __init__(self, at: datetime) -> None:
        self._now = _local(at)

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        self._now = _local(at)

    def advance(self, delta: timedelta) -> datetime:
        self._now = self._now + delta
        return self._now
