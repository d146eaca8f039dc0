"""``motcua serve``: the HTTP app under uvicorn, on the embedded default unless configured."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def serve(
    host: Annotated[str, typer.Option(help="Địa chỉ / address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Cổng / port")] = 8000,
    demo: Annotated[
        bool, typer.Option(help="Load 30 days of demo data once when there are no dossiers")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, max=32)] = 1,
) -> None:
    """Chạy máy chủ HTTP / run the HTTP server (API, officer pages, citizen lookup)."""
    import uvicorn
    from sqlmodel import func, select

    from api.app import create_app
    from api.deps import open_context
    from api.logs import uvicorn_log_config
    from services.demo import DEMO_PASSWORD, ensure_supervisors, run_demo
    from services.directory import sync_catalog
    from services.settings import Settings, get_settings
    from storage.models import Dossier, User

    settings = get_settings()
    if settings.secret_key == Settings.model_fields["secret_key"].default:
        # embedded default: a random signing key kept in the data folder (git-ignored)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key_file = settings.data_dir / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(48), encoding="utf-8")
            key_file.chmod(0o600)
        settings = settings.model_copy(
            update={"secret_key": key_file.read_text(encoding="utf-8").strip()}
        )
    ctx = open_context(settings)
    sync_catalog(ctx)
    with ctx.uow() as uow:
        dossiers = uow.session.exec(select(func.count()).select_from(Dossier)).one()
    if demo and not dossiers:
        console.print("Đang tạo dữ liệu mẫu 30 ngày / loading 30 days of demo data…")
        result = run_demo(ctx, 30, 1)
        ensure_supervisors(ctx)
        console.print(f"{result.submitted} hồ sơ mẫu / demo dossiers")
    with ctx.uow() as uow:
        counters = uow.session.exec(
            select(User.username).where(User.role == "counter").order_by(User.username).limit(3)
        ).all()
        others = uow.session.exec(
            select(User.username).where(User.unit_code == "000.00.02.H37").order_by(User.username)
        ).all()
    address = f"http://{host}:{port}"
    console.print(f"\n[bold]motcua[/bold] → {address}/  (đăng nhập / sign in: {address}/signin)")
    console.print(f"API docs (offline): {address}/docs · tra cứu / lookup: {address}/lookup")
    if counters or others:
        console.print(f"Tài khoản mẫu / demo accounts (mật khẩu / password: {DEMO_PASSWORD}):")
        for name in [*counters, *others, "giamsat", "quantri"]:
            console.print(f"  {name}")
    background = None
    if settings.embedded_workers:
        # the flows (outbox drain, deadline watch, digitization) in this process, on Prefect's
        # local mode: no extra service to start (MOTCUA_EMBEDDED_WORKERS=false when `motcua
        # worker` processes do it)
        from api.routes.documents import object_store_for
        from workflows.deploy import start_embedded_workers

        background = start_embedded_workers(ctx, settings, store=object_store_for(settings))
        console.print("Luồng nền / background flows: drain-outbox, deadline-watch, digitize")
    try:
        if workers > 1:
            # Each worker is a spawned process that re-imports this command's module (api.cli,
            # ~3-5 s of CPU on a 2-core machine) before it answers uvicorn's health check; at
            # uvicorn's default of 5 s a loaded machine kills and respawns the workers forever
            # (seen by benchmarks.transitions at load average ~10). A hung worker is then
            # replaced after 60 s instead of 5.
            uvicorn.run(
                "api.app:create_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                timeout_worker_healthcheck=60,
                log_config=uvicorn_log_config(),
            )
        else:
            uvicorn.run(
                create_app(ctx, settings), host=host, port=port, log_config=uvicorn_log_config()
            )
    finally:
        if background is not None:
            background.stop()
