"""The ``motcua`` command line."""

from __future__ import annotations

import sys
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.errors import DomainError

app = typer.Typer(
    help="motcua — Bộ phận Một cửa: hồ sơ, quy trình, thời hạn.", no_args_is_help=True
)
procedures_app = typer.Typer(help="Danh mục thủ tục / procedure catalog", no_args_is_help=True)
dossier_app = typer.Typer(help="Hồ sơ / dossiers", no_args_is_help=True)
db_app = typer.Typer(help="Cơ sở dữ liệu / database", no_args_is_help=True)
app.add_typer(procedures_app, name="procedures")
app.add_typer(dossier_app, name="dossier")
app.add_typer(db_app, name="db")

console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)


def _fail(error: DomainError) -> typer.Exit:
    err_console.print(f"[red]Lỗi:[/red] {error.message_vi}\n[red]Error:[/red] {error.message_en}")
    return typer.Exit(code=2)


@procedures_app.command("validate")
def procedures_validate(
    folder: Annotated[Path, typer.Argument(help="Thư mục danh mục / catalog folder")] = Path(
        "catalog"
    ),
) -> None:
    """Kiểm tra danh mục thủ tục / validate a catalog folder."""
    from services.catalog import load_catalog

    try:
        catalog = load_catalog(folder)
    except DomainError as error:
        raise _fail(error) from None
    inter = sum(1 for p in catalog.procedures.values() if any(v.inter_agency for v in p.versions))
    console.print(
        f"OK: {len(catalog.procedures)} thủ tục ({inter} liên thông), "
        f"{len(catalog.units)} đơn vị, {len(catalog.rule_sets)} bộ quy tắc — {folder}"
    )


@procedures_app.command("list")
def procedures_list(
    on: Annotated[str | None, typer.Option(help="Ngày áp dụng YYYY-MM-DD")] = None,
) -> None:
    """Liệt kê thủ tục / list procedures with the version in force."""
    from services.catalog import default_catalog

    day = date.fromisoformat(on) if on else date.today()
    table = Table("Mã", "Tên thủ tục", "Cấp", "Thời hạn (ngày LV)", "Phiên bản", "Liên thông")
    for procedure in sorted(default_catalog().procedures.values(), key=lambda p: p.code):
        try:
            v = procedure.version_at(day)
        except DomainError:
            continue
        table.add_row(
            procedure.code,
            procedure.name,
            v.level,
            str(v.time_limit),
            str(v.version),
            "có" if v.inter_agency else "",
        )
    console.print(table)


@procedures_app.command("diagram")
def procedures_diagram(
    code: str,
    out: Annotated[Path, typer.Option("--out", help="FILE.svg / FILE.png / FILE.dot")],
    version: Annotated[int | None, typer.Option(help="Phiên bản")] = None,
) -> None:
    """Vẽ sơ đồ trạng thái / draw a procedure's state machine."""
    from statemachine.contrib.diagram import DotGraphMachine

    from services.catalog import default_catalog
    from states.lifecycle import build_machine_class

    try:
        procedure = default_catalog().procedure(code)
        v = procedure.version(version) if version else procedure.version_at(date.today())
    except DomainError as error:
        raise _fail(error) from None
    machine = build_machine_class(f"{code}@{v.version}", v.process)
    graph = DotGraphMachine(machine)()
    suffix = out.suffix.lower().lstrip(".") or "svg"
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == "dot":
        out.write_text(graph.to_string(), encoding="utf-8")
    else:
        graph.write(str(out), format=suffix)
    console.print(f"{out}")


@app.command("due-date")
def due_date(
    received: Annotated[
        str, typer.Option(help="ISO 8601 with offset, e.g. 2025-01-24T09:30:00+07:00")
    ],
    working_days: Annotated[str, typer.Option(help="Working days; 0 = same day; halves allowed")],
) -> None:
    """Hạn trả kết quả / the due instant for a dossier received at RECEIVED."""
    from services.clock import default_calendar

    try:
        at = datetime.fromisoformat(received)
        days = Decimal(working_days)
    except (ValueError, InvalidOperation):
        err_console.print(
            "Lỗi: thời điểm hoặc số ngày không hợp lệ / Error: invalid instant or day count"
        )
        raise typer.Exit(code=2) from None
    if at.tzinfo is None:
        err_console.print("Lỗi: cần múi giờ (+07:00) / Error: an offset (+07:00) is required")
        raise typer.Exit(code=2)
    if days < 0 or (days * 2) % 1 != 0:
        err_console.print(
            "Lỗi: số ngày làm việc phải ≥ 0, theo nửa ngày / "
            "Error: working days must be ≥ 0 in halves"
        )
        raise typer.Exit(code=2)
    print(default_calendar().due_at_receipt(at, days).isoformat())


@dossier_app.command("slip")
def dossier_slip(code: str) -> None:
    """Phiếu kiểm soát quá trình giải quyết hồ sơ (Form 05)."""
    from api.deps import open_context
    from services.slip import control_slip, render_text

    try:
        print(render_text(control_slip(open_context(), code)))
    except DomainError as error:
        raise _fail(error) from None


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Áp dụng migration / bring the schema to the newest revision."""
    from api.deps import open_context

    open_context()
    console.print("OK")


@app.command("demo")
def demo(
    days: Annotated[int, typer.Option(min=1, max=3660)] = 30,
    seed: Annotated[int, typer.Option()] = 1,
    end: Annotated[
        str | None, typer.Option(help="Last simulated day YYYY-MM-DD (default today)")
    ] = None,
) -> None:
    """Tạo dữ liệu mẫu và in tỷ lệ đúng hạn / simulate N days and print the on-time summary."""
    import time as _time

    from api.deps import open_context
    from services.demo import run_demo
    from services.metrics import on_time_report, total

    ctx = open_context()
    started = _time.perf_counter()
    result = run_demo(ctx, days, seed, date.fromisoformat(end) if end else None)
    with ctx.uow() as uow:
        rows = on_time_report(uow.session, result.start, result.end, by="unit")
        names = {u.code: u.name for u in ctx.catalog.units.values()}
    table = Table(
        "Đơn vị / unit", "Tên", "Tiếp nhận", "Đã giải quyết", "Trước hạn", "Đúng hạn", "Quá hạn",
        "Tỷ lệ đúng hạn (%)", title=f"Tỷ lệ đúng hạn {result.start} → {result.end}",
    )  # fmt: skip
    for row in [*rows, total(rows, "Tổng")]:
        rate = row.on_time_rate
        table.add_row(
            row.key, names.get(row.key, ""), str(row.received), str(row.finished),
            str(row.early), str(row.on_time), str(row.late), "" if rate is None else str(rate),
        )  # fmt: skip
    console.print(table)
    console.print(
        f"{result.submitted} hồ sơ, {result.actions} thao tác "
        f"({result.rejected_actions} bị từ chối bởi quy tắc) trong "
        f"{_time.perf_counter() - started:.1f} s"
    )
    if result.refusals:
        console.print(f"Thao tác bị quy tắc từ chối / refused by the rules: {result.refusals}")


from api.cli_serve import serve as _serve  # noqa: E402

app.command("serve")(_serve)


from api.cli_import import import_cmd as _import_cmd  # noqa: E402
from api.cli_report import report_app as _report_app  # noqa: E402

app.command("import")(_import_cmd)
app.add_typer(_report_app, name="report")


def main() -> None:  # pragma: no cover
    sys.exit(app())


from api import cli_workflows as _wf  # noqa: E402

app.command("worker")(_wf.worker_cmd)
app.command("fake-agency")(_wf.fake_agency_cmd)
app.add_typer(_wf.outbox_app, name="outbox")
app.add_typer(_wf.portal_app, name="portal")

from api import cli_feedback as _fb  # noqa: E402

app.command("fake-gateway")(_fb.fake_gateway)
app.add_typer(_fb.feedback_app, name="feedback")

from api.cli_documents import documents_app as _documents_app  # noqa: E402

app.add_typer(_documents_app, name="documents")
