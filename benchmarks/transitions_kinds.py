"""The API's CPU per kind of request of the transitions mix, in bare reads: where a transition's
cost goes, one phase per kind (the mix interleaves them, so its CPU cannot be split by kind).

    .venv/bin/python -m benchmarks.transitions_kinds [--dossiers 150] [--users 8]

Sets the database up as ``benchmarks.transitions`` does, starts ``motcua serve`` and the bare
read's app (1 uvicorn worker each, the same logging and request threads), signs the officers
in, then runs one phase per kind with ``--users`` keep-alive users, each phase alone: the bare
read, the receipt (with ``Idempotency-Key``), the read of one dossier, and for each step of the
mix the worklist read of that step's officer and the event. Prints, per kind, the requests per
second and the API's CPU milliseconds per request, also as a multiple of the bare read's (the
ratio is steadier than either on a shared machine). Writes nothing to BENCHMARKS.md.
Found this way (7 December 2026): a worklist read of 20 rows cost 2.5 bare reads, a third of
the mix, and most of it was the working calendar counting overdue days one at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg

from benchmarks import transitions as mix
from benchmarks.httpload import Connection, Response, install_uvloop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=150, help="dossiers per user")
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()

    url = mix.recreate(mix.DEFAULT_SERVER, mix.DATABASE)
    units, users = mix.setup(url, 4, 50_000)
    data_dir = Path(tempfile.mkdtemp(prefix="motcua-kinds-"))
    port, bare_port = mix.free_port(), mix.free_port()
    api = mix.start_api(url, data_dir, port, 1)
    bare = None
    try:
        bare = mix.start_bare(url, data_dir, bare_port, 1)
        tokens = mix.sign_in(port, users)
        with psycopg.connect(url) as conn:
            codes = [r[0] for r in conn.execute("SELECT code FROM dossier LIMIT 20000")]
        install_uvloop()
        asyncio.run(_phases(args, port, bare_port, bare.pid, api.pid, tokens, units, codes))
    finally:
        mix.stop(api)
        if bare is not None:
            mix.stop(bare)


async def _phases(
    args: argparse.Namespace,
    port: int,
    bare_port: int,
    bare_pid: int,
    api_pid: int,
    tokens: dict[str, dict[str, str]],
    units: list[str],
    codes: list[str],
) -> None:
    n, users = args.dossiers, args.users
    conns = [Connection("127.0.0.1", port) for _ in range(users)]
    bare_conns = [Connection("127.0.0.1", bare_port) for _ in range(users)]
    held: list[list[list[str]]] = [[] for _ in range(users)]  # per user: [code, etag]
    unit_ms: list[float] = []

    def auth(user: int, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[units[user % len(units)]][role]}"}

    async def ask(conn: Connection, method: str, path: str, headers: dict[str, str],
                  body: object = None, expect: int = 200) -> Response:  # fmt: skip
        try:
            response = await conn.request(method, path, headers, body)
        except ConnectionError:  # idle longer than uvicorn's keep-alive (5 s) between phases
            conn.close()
            response = await conn.request(method, path, headers, body)
        if response.status != expect:
            raise SystemExit(f"{method} {path}: HTTP {response.status} {response.body[:300]!r}")
        return response

    async def phase(name: str, pid: int, work: Callable[[int], Awaitable[None]]) -> None:
        before = mix.cpu_by_group(pid, [])["api"]
        began = time.monotonic()
        await asyncio.gather(*(work(user) for user in range(users)))
        seconds = time.monotonic() - began
        cpu_ms = 1000 * (mix.cpu_by_group(pid, [])["api"] - before) / (n * users)
        if not unit_ms:  # the first phase, the bare read, is the unit
            unit_ms.append(cpu_ms)
        print(f"  {name:<24} {n * users / seconds:7.1f}/s   API CPU {cpu_ms:5.2f} ms/request"
              f"   = {cpu_ms / unit_ms[0]:4.2f} bare reads", flush=True)  # fmt: skip

    async def bare_read(user: int) -> None:
        for i in range(n):
            code = codes[(user * 7919 + i) % len(codes)]
            await ask(bare_conns[user], "GET", f"/bare/dossiers/{code}", {})

    async def receive(user: int) -> None:
        for i in range(n):
            body = {
                "procedure_code": mix.PROCEDURE,
                "applicant": {"name": "Nguyễn Thị Bích", "id_number": f"1{user:05d}{i:06d}"},
                "components": mix.COMPONENTS,
            }
            headers = {**auth(user, "counter"), "Idempotency-Key": f"kinds-{user}-{i}"}
            r = await ask(conns[user], "POST", "/api/v1/dossiers", headers, body, 201)
            held[user].append([r.json()["code"], r.headers[b"etag"].decode()])

    async def read_one(user: int) -> None:
        for code, _ in held[user]:
            await ask(conns[user], "GET", f"/api/v1/dossiers/{code}", auth(user, "counter"))

    def worklist(role: str, status: str) -> Callable[[int], Awaitable[None]]:
        async def work(user: int) -> None:
            for _ in range(n):
                path = f"/api/v1/dossiers?status={status}&limit=20"
                await ask(conns[user], "GET", path, auth(user, role))

        return work

    def event(name: str, role: str, payload: dict[str, object]) -> Callable[[int], Awaitable[None]]:
        async def work(user: int) -> None:
            for entry in held[user]:
                headers = {**auth(user, role), "If-Match": entry[1]}
                path = f"/api/v1/dossiers/{entry[0]}/events/{name}"
                r = await ask(conns[user], "POST", path, headers, payload)
                entry[1] = r.headers[b"etag"].decode()

        return work

    print(f"{users} users, {n} requests each per phase; 1 uvicorn worker each")
    # warm-up, not measured: the first requests of a process pay for imports and caches
    await asyncio.gather(*(bare_read(user) for user in range(users)))
    await asyncio.gather(*(worklist("counter", "intake")(user) for user in range(users)))
    await phase("bare read (the unit)", bare_pid, bare_read)
    await phase("receive (keyed)", api_pid, receive)
    await phase("read one dossier", api_pid, read_one)
    for name, role, status, payload in mix.PLAN:
        await phase(f"worklist ({status})", api_pid, worklist(role, status))
        await phase(name, api_pid, event(name, role, payload))


if __name__ == "__main__":
    main()
