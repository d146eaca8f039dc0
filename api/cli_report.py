"""``motcua report on-time``: the on-time report as CSV or a spreadsheet (DOMAIN.md §2 Counting).

Contract (issue 6)::

    motcua report on-time --from 2025-01-01 --to 2025-03-31 --by unit --format csv

prints ``unit_code,received,finished,early,on_time,late,in_progress,overdue,on_time_rate``, one
row per receiving unit sorted by code, ``on_time_rate`` with two decimals or empty when nothing
was finished. ``--by procedure`` puts ``procedure_code`` first; ``--by agency`` ``agency_code``;
``--by level|channel|field`` the name of the grouping; ``--by day|week|month|quarter|year``
one row per period (``period_start,period_end,…``, the same counts). ``--by responsible-unit``
is the second report, lateness by the unit whose step ran over (header
``services.metrics.RESPONSIBLE_HEADER``).
``--format xlsx --out FILE`` writes the same table to a spreadsheet.

``motcua report feedback --from … --to …`` prints the Decision 766 feedback figures per agency
(``services.indicators_feedback.REPORT_HEADER``): feedback handled on time and satisfaction with
feedback handling, their counts and numerators, then a ``TOTAL`` line.
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from services.context import Context

report_app = typer.Typer(help="Báo cáo / reports", no_args_is_help=True)

COLUMNS = ("received", "finished", "early", "on_time", "late", "in_progress", "overdue")
FIRST_COLUMN = {
    "unit": "unit_code",
    "procedure": "procedure_code",
    "agency": "agency_code",
    "level": "level",
    "channel": "channel",
    "field": "field",
}


class By(StrEnum):
    unit = "unit"
    procedure = "procedure"
    agency = "agency"
    level = "level"
    channel = "channel"
    field = "field"
    responsible_unit = "responsible-unit"
    day = "day"
    week = "week"
    month = "month"
    quarter = "quarter"
    year = "year"


class Format(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


def on_time_table(ctx: Context, start: date, end: date, by: str) -> list[list[str]]:
    """Header and rows as text, exactly what the CSV prints."""
    from services.metrics import (
        RESPONSIBLE_HEADER,
        format_rate,
        on_time_report,
        responsible_unit_report,
        trend,
    )

    with ctx.uow() as uow:
        if by == "responsible-unit":
            inter = {
                code: {s.id for v in p.versions for s in v.process if s.inter_agency}
                for code, p in ctx.catalog.procedures.items()
            }
            rows = responsible_unit_report(uow.session, start, end, inter_agency_steps=inter)
            table = [RESPONSIBLE_HEADER.split(",")]
            for r in rows:
                table.append(
                    [
                        r.key,
                        str(r.steps_finished),
                        str(r.steps_early),
                        str(r.steps_on_time),
                        str(r.steps_late),
                        str(r.late_dossiers),
                        str(r.inter_agency_steps_late),
                        format_rate(r.step_on_time_rate),
                    ]
                )
            return table
        if by in ("day", "week", "month", "quarter", "year"):
            series = trend(
                uow.session,
                start,
                end,
                by,  # type: ignore[arg-type]
                now=ctx.clock.now(),
                calendar=ctx.calendar,
            )
            table = [["period_start", "period_end", *COLUMNS, "on_time_rate"]]
            for first, last, row in series:
                table.append(
                    [
                        first.isoformat(),
                        last.isoformat(),
                        *(str(getattr(row, c)) for c in COLUMNS),
                        format_rate(row.on_time_rate),
                    ]
                )
            return table
        report = on_time_report(uow.session, start, end, by=by, calendar=ctx.calendar)  # type: ignore[arg-type]
    table = [[FIRST_COLUMN[by], *COLUMNS, "on_time_rate"]]
    for row in report:
        table.append(
            [row.key, *(str(getattr(row, c)) for c in COLUMNS), format_rate(row.on_time_rate)]
        )
    return table


@report_app.command("on-time")
def on_time(
    start: Annotated[str, typer.Option("--from", help="Từ ngày YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="Đến ngày YYYY-MM-DD")],
    by: Annotated[By, typer.Option("--by", help="Nhóm theo / group by")] = By.unit,
    fmt: Annotated[Format, typer.Option("--format", help="csv | xlsx")] = Format.csv,
    out: Annotated[Path | None, typer.Option("--out", help="Tệp kết quả / output file")] = None,
) -> None:
    """Tỷ lệ giải quyết đúng hạn / on-time report (DOMAIN.md §2 Counting)."""
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as error:
        print(f"Lỗi: ngày không hợp lệ / Error: invalid date: {error}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    if last < first:
        print("Lỗi: --to trước --from / Error: --to is before --from", file=sys.stderr)
        raise typer.Exit(code=2)
    from api.deps import open_context

    table = on_time_table(open_context(), first, last, by.value)
    if fmt == Format.xlsx:
        if out is None:
            print("Lỗi: cần --out FILE.xlsx / Error: --out FILE.xlsx is required", file=sys.stderr)
            raise typer.Exit(code=2)
        write_xlsx(table, out, title=f"on-time {first}..{last} by {by.value}")
        print(str(out))
        return
    text = to_csv(table)
    if out is not None:
        out.write_text(text, encoding="utf-8")
        print(str(out))
    else:
        sys.stdout.write(text)


def feedback_report_table(ctx: Context, start: date, end: date) -> list[list[str]]:
    """Decision 766 feedback figures per agency (``services.indicators_feedback``), as printed."""
    from services.indicators_feedback import feedback_indicators, feedback_table

    with ctx.uow() as uow:
        rows = feedback_indicators(uow.session, start, end, ctx.clock.now())
    return feedback_table(rows)


@report_app.command("feedback")
def feedback(
    start: Annotated[str, typer.Option("--from", help="Từ ngày YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="Đến ngày YYYY-MM-DD")],
    fmt: Annotated[Format, typer.Option("--format", help="csv | xlsx")] = Format.csv,
    out: Annotated[Path | None, typer.Option("--out", help="Tệp kết quả / output file")] = None,
) -> None:
    """Phản ánh, kiến nghị xử lý đúng hạn và mức độ hài lòng (QĐ 766) theo cơ quan / feedback
    handled on time and satisfaction with feedback handling (Decision 766) per agency."""
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as error:
        print(f"Lỗi: ngày không hợp lệ / Error: invalid date: {error}", file=sys.stderr)
        raise typer.Exit(code=2) from None
    if last < first:
        print("Lỗi: --to trước --from / Error: --to is before --from", file=sys.stderr)
        raise typer.Exit(code=2)
    from api.deps import open_context

    table = feedback_report_table(open_context(), first, last)
    if fmt == Format.xlsx:
        if out is None:
            print("Lỗi: cần --out FILE.xlsx / Error: --out FILE.xlsx is required", file=sys.stderr)
            raise typer.Exit(code=2)
        write_xlsx(table, out, title=f"feedback {first}..{last}", sheet="feedback")
        print(str(out))
        return
    text = to_csv(table)
    if out is not None:
        out.write_text(text, encoding="utf-8")
        print(str(out))
    else:
        sys.stdout.write(text)


def to_csv(table: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(table)
    return buffer.getvalue()


def write_xlsx(table: list[list[str]], out: Path, *, title: str, sheet: str = "on_time") -> None:
    """The same table; counts as numbers, rates and points as numbers with two decimals."""
    from openpyxl import Workbook

    workbook = Workbook()
    worksheet = workbook.active
    assert worksheet is not None
    worksheet.title = sheet
    header = table[0]
    worksheet.append(header)
    decimal_columns = [
        index for index, name in enumerate(header) if name.endswith(("rate", "pct", "points"))
    ]
    for row in table[1:]:
        cells: list[object] = [row[0]]
        for index, value in enumerate(row[1:], start=1):
            if value == "":
                cells.append(None)
            elif index in decimal_columns:
                cells.append(float(value))
            else:
                cells.append(int(value))
        worksheet.append(cells)
    for index in decimal_columns:
        for column in worksheet.iter_cols(min_row=2, min_col=index + 1, max_col=index + 1):
            for cell in column:
                cell.number_format = "0.00"
    workbook.properties.title = title
    out.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(out)
