"""``motcua documents …``: the orphan sweeper, a dossier's digitization state, 766 indicators."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services.errors import DomainError

documents_app = typer.Typer(help="Tài liệu số hóa / digitized documents", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)


def _fail(error: DomainError) -> typer.Exit:
    err_console.print(f"[red]Lỗi:[/red] {error.message_vi}\n[red]Error:[/red] {error.message_en}")
    return typer.Exit(code=2)


@documents_app.command("sweep")
def sweep(
    grace_hours: Annotated[
        float, typer.Option(min=0.0, help="Only objects older than this many hours")
    ] = 6.0,
    prefix: Annotated[str, typer.Option(help="Only keys starting with this prefix")] = "",
) -> None:
    """Xóa đối tượng không có bản ghi / remove stored objects that no document row refers to
    (left by a crash between storing and recording), once older than the grace period."""
    from api.deps import open_context
    from api.routes.documents import object_store_for
    from services.documents import sweep_orphans
    from services.settings import get_settings

    settings = get_settings()
    ctx = open_context(settings)
    store = object_store_for(settings)
    result = sweep_orphans(ctx, store, grace=timedelta(hours=grace_hours), prefix=prefix)
    for key in result.removed:
        console.print(f"removed {key}")
    for key in result.failed:
        err_console.print(f"[yellow]could not remove[/yellow] {key}")
    console.print(
        f"{len(result.removed)} removed, {result.kept_recent} kept (inside the grace period), "
        f"{len(result.failed)} failed"
    )
    if result.failed:
        raise typer.Exit(code=1)


@documents_app.command("state")
def state(code: str) -> None:
    """Trạng thái số hóa từng thành phần / per-component digitization state of a dossier."""
    from api.deps import open_context
    from services.documents import component_states, receipt_check
    from states.lifecycle import Actor

    ctx = open_context()
    try:
        states = component_states(ctx, Actor("cli", "admin", "000.00.00.H37"), code)
        check = receipt_check(ctx, code)
    except DomainError as error:
        raise _fail(error) from None
    table = Table("Thành phần / component", "Tên", "Trạng thái / status", "Phiên bản", "Miễn")
    for s in states:
        table.add_row(s.component, s.name, s.status, str(s.version or ""), s.exemption or "")
    console.print(table)
    console.print(
        f"require_digitized={check.mode}; missing: {', '.join(check.missing) or '—'}; "
        f"receipt {'allowed' if check.allowed else 'BLOCKED'}"
    )


@documents_app.command("report")
def report(
    start: Annotated[str, typer.Option("--from", help="YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="YYYY-MM-DD")],
    by: Annotated[str, typer.Option(help="unit | agency | procedure")] = "unit",
) -> None:
    """Chỉ số số hóa (Quyết định 766) / digitization indicators per group and period."""
    from api.deps import open_context
    from services.digitization_metrics import digitization_report, total

    if by not in ("unit", "agency", "procedure"):
        err_console.print("Lỗi: --by phải là unit, agency hoặc procedure / Error: bad --by")
        raise typer.Exit(code=2)
    try:
        lo, hi = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError:
        err_console.print("Lỗi: ngày không hợp lệ / Error: invalid date")
        raise typer.Exit(code=2) from None
    ctx = open_context()
    with ctx.uow() as uow:
        rows = digitization_report(ctx, uow.session, lo, hi, by=by)  # type: ignore[arg-type]
    table = Table(
        "Nhóm / group", "Tiếp nhận", "Số hóa khi tiếp nhận", "%", "Tái sử dụng", "%",
        "Đã giải quyết", "Có KQ điện tử", "%", "Điểm (4/6/2)",
        title=f"Số hóa {lo} → {hi} (Quyết định 766)",
    )  # fmt: skip

    def show(value: object) -> str:
        return "" if value is None else str(value)

    for row in [*rows, total(rows)]:
        p = row.points
        table.add_row(
            row.key, str(row.received), str(row.digitized_at_receipt), show(row.receipt_rate),
            str(row.with_reuse), show(row.reuse_rate), str(row.finished),
            str(row.with_e_result), show(row.result_rate),
            f"{show(p['components'])} / {show(p['e_result'])} / {show(p['reuse'])}",
        )  # fmt: skip
    console.print(table)
