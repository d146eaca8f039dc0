"""Two API trees under the transitions mix at the same moments: changes of a tenth show here,
where a single run of ``benchmarks.transitions`` moves by a fifth with the shared machine.

    .venv/bin/python -m benchmarks.transitions_ab OLD_TREE NEW_TREE [--users 8] [--seconds 15]
        [--rounds 3]

A tree is a checkout of motcua (``git worktree add /tmp/old <commit>``), optionally followed by
``:NAME=value`` settings for its server (``/tmp/old:MOTCUA_REQUEST_THREADS=8``); the same tree
twice compares two settings. Both servers (``motcua serve``, 1 worker each, the tree first on
``PYTHONPATH``) share one database set up as ``benchmarks.transitions`` does; each gets its own
client with ``--users`` virtual users, both windows at once. Prints, per round and tree, the
transitions per second and the API's CPU milliseconds per transition (its worklist reads
included). Writes nothing to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import transitions as mix


def _start(spec: str, url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    root, *settings = spec.split(":")
    extra = dict(setting.split("=", 1) for setting in settings)
    return mix.start_api(url, data_dir, port, 1, root=Path(root), settings=extra,
                         log_name=f"api-{port}.log")  # fmt: skip


def _drive(name: str, port: int, tokens: Any, units: list[str], pid: int, users: int,
           seconds: float, results: Any) -> None:  # fmt: skip
    def plan(group: list[int], start: float, end: float) -> mix.Plan:
        return mix.Plan("127.0.0.1", port, group, tokens, units, start, end, 0.5, "mix", seed=1)

    run = mix.drive(plan, users, 1, 5.0, seconds, pid)
    results.put((name, run.rate(mix.TRANSITIONS), run.api_cpu_ms(mix.TRANSITIONS), run.errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, help="two checkouts, each with optional :NAME=value")
    parser.add_argument("--users", type=int, default=8, help="virtual users per tree")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    url = mix.recreate(mix.DEFAULT_SERVER, mix.DATABASE)
    units, users = mix.setup(url, 4, 50_000)
    data_dir = Path(tempfile.mkdtemp(prefix="motcua-ab-"))
    ports = [mix.free_port() for _ in args.trees]
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for spec, port in zip(args.trees, ports, strict=True):
            servers.append(_start(spec, url, data_dir, port))
        tokens = [mix.sign_in(port, users) for port in ports]
        context = mp.get_context("fork")
        for turn in range(args.rounds):
            results = context.Queue()
            clients = [
                context.Process(target=_drive, args=(spec, port, token, units, server.pid,
                                                     args.users, args.seconds, results))
                for spec, port, token, server in zip(args.trees, ports, tokens, servers,
                                                     strict=True)
            ]  # fmt: skip
            for client in clients:
                client.start()
            answers = sorted(results.get(timeout=600) for _ in clients)
            for client in clients:
                client.join(30)
            for name, rate, cpu_ms, errors in answers:
                print(
                    f"round {turn}: {name:<40} {rate:6.1f} transitions/s   "
                    f"API CPU {cpu_ms:5.2f} ms/transition   errors {errors or 'none'}"
                )
    finally:
        for server in servers:
            mix.stop(server)


if __name__ == "__main__":
    main()
