"""``motcua serve`` in a process of its own for the browser tests, stopped with all it started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def motcua_server(env: dict[str, str]) -> Iterator[str]:
    """The server's base URL once ``/readyz`` answers. It runs in a process group of its own:
    at the end the whole group is stopped, Prefect's temporary server (local mode, started by
    the embedded flows) included, which outlived a plain ``terminate`` of the server."""
    port = _free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "motcua"), "serve", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded 2-core CI machine: imports alone take 5-10 s
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the server did not start")
            time.sleep(0.2)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # what outlived it in its group
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
