"""``motcua import FILE.jsonl``: historical dossiers from an old system (services/importer.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from services.importer import ImportResult


def import_cmd(
    file: Annotated[Path, typer.Argument(help="Tệp JSON Lines, mỗi dòng một hồ sơ / JSONL file")],
) -> None:
    """Nhập hồ sơ lịch sử / import historical dossiers (one per line, idempotent by ref)."""
    from api.deps import open_context
    from services.directory import sync_catalog
    from services.importer import import_file

    if not file.is_file():
        print(f"Lỗi: không có tệp {file} / Error: no file {file}", file=sys.stderr)
        raise typer.Exit(code=2)
    ctx = open_context()
    sync_catalog(ctx)

    def progress(result: ImportResult) -> None:
        print(
            f"… {result.lines} dòng / lines: {result.imported} nhập / imported, "
            f"{result.skipped} đã có / skipped, {len(result.refused)} từ chối / refused",
            file=sys.stderr,
            flush=True,
        )

    result = import_file(ctx, file, progress=progress)
    for refused in result.refused:
        print(str(refused), file=sys.stderr)
    print(
        f"Đã nhập {result.imported} hồ sơ, bỏ qua {result.skipped} (đã có), "
        f"từ chối {len(result.refused)} dòng / imported {result.imported}, "
        f"skipped {result.skipped} (already there), refused {len(result.refused)} lines"
    )
    # exit 0 once the file was read: refused lines are reported above, the rest is imported
