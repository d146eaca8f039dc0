"""``motcua serve --workers 2`` keeps workers that are slow to start (a loaded machine).

Each uvicorn worker is a spawned process that re-imports the command's module before it answers
the supervisor's health check; uvicorn's default (5 s) killed and respawned such workers forever
on a loaded 2-core machine. Here a ``sitecustomize`` makes every spawned worker 7 s slower to
start: the server must still come up, with the same two workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SLOW_START = """
import sys, time
if "--multiprocessing-fork" in sys.argv:
    time.sleep(7)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.add(int(entry))
    return found


def test_workers_slow_to_start_are_kept(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_START)
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "site"),
        "MOTCUA_DATA_DIR": str(tmp_path / "data"),
        "MOTCUA_DATABASE_URL": f"sqlite:///{tmp_path / 'motcua.db'}",
        "MOTCUA_SECRET_KEY": "serve-workers-test-secret-0123456789",
        "MOTCUA_EMBEDDED_WORKERS": "false",
    }
    motcua = Path(sys.executable).parent / "motcua"
    server = subprocess.Popen(
        [str(motcua), "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 150
        while True:
            assert server.poll() is None, "motcua serve exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "motcua serve --workers 2 never answered"
            time.sleep(0.2)
        workers = _children(server.pid)
        time.sleep(6)  # past uvicorn's default health-check timeout
        assert _children(server.pid) == workers, "workers were killed and respawned"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=90)
    assert b"died" not in err, err.decode(errors="replace")[-2000:]
