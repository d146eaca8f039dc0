"""A large upload through the API against the same file sent straight with the minio client.

    uv run python -m benchmarks.upload [--size-mib 1024]

Starts an S3 server process on loopback (moto's server mode, or ``--endpoint`` for a real MinIO)
and the API (uvicorn in a subprocess, ``MOTCUA_OBJECT_STORE=minio``, a SQLite database in a
temporary folder), generates a file of ``--size-mib`` MiB (a PDF header then pseudo-random
bytes), uploads it through ``POST /api/v1/dossiers/{code}/documents/{component}`` while reading
the server's peak RSS (``VmHWM`` in /proc/<pid>/status), then uploads the same file with
``Minio.fput_object`` to the same endpoint. Prints both throughputs, their ratio and the peak RSS.
Goals (issue 4): peak RSS < 150 MiB, ratio >= 0.8. The API process gets ``MALLOC_ARENA_MAX=2``
as the README recommends for deployment (``--malloc-arena-max 0`` for glibc's default).
Moto's speed is not MinIO's: compare the ratio, measured in the same run."""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from .report import Report

MIB = 1024 * 1024
CENTRE = "000.00.01.H37"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer at {url}")


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def make_file(path: Path, size: int) -> str:
    """A valid one-page PDF of about ``size`` bytes: a page showing one large grey image whose
    samples are pseudo-random (a scan does not compress). Returns the SHA-256."""
    sha = hashlib.sha256()
    offsets: list[int] = []
    written = 0

    def write(out: io.BufferedWriter, data: bytes) -> None:
        nonlocal written
        out.write(data)
        sha.update(data)
        written += len(data)

    width = 8192
    height = max(1, (size - 1024) // width)
    samples = width * height
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>",
    ]
    block = bytearray(os.urandom(MIB))
    with open(path, "wb") as out:
        write(out, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        for number, body in enumerate(objects, start=1):
            offsets.append(written)
            write(out, b"%d 0 obj\n" % number + body + b"\nendobj\n")
        offsets.append(written)
        write(
            out,
            b"4 0 obj\n<< /Type /XObject /Subtype /Image /Width %d /Height %d "
            b"/ColorSpace /DeviceGray /BitsPerComponent 8 /Length %d >>\nstream\n"
            % (width, height, samples),
        )
        left, n = samples, 0
        while left > 0:
            block[:32] = hashlib.sha256(n.to_bytes(8, "big")).digest()
            chunk = bytes(block[: min(MIB, left)])
            write(out, chunk)
            left -= len(chunk)
            n += 1
        write(out, b"\nendstream\nendobj\n")
        content = b"q 595 0 0 842 0 0 cm /Im0 Do Q"
        offsets.append(written)
        write(out, b"5 0 obj\n<< /Length %d >>\nstream\n" % len(content) + content)
        write(out, b"\nendstream\nendobj\n")
        xref = written
        table = b"".join(b"%010d 00000 n \n" % o for o in offsets)
        write(out, b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1) + table)
        write(
            out,
            b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(offsets) + 1, xref),
        )
    return sha.hexdigest()


def upload_through_api(
    port: int, path: Path, code: str, token: str, digest: str
) -> tuple[float, int, str]:
    size = path.stat().st_size
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600, blocksize=MIB)
    started = time.perf_counter()
    with open(path, "rb") as body:
        conn.request(
            "POST",
            f"/api/v1/dossiers/{code}/documents/applicant_id?sha256={digest}&file_name=scan.pdf",
            body=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Length": str(size),
                "Content-Type": "application/pdf",
            },
        )
        response = conn.getresponse()
        text = response.read().decode()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, response.status, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--endpoint", help="host:port of a real MinIO instead of moto")
    parser.add_argument("--access-key", default="testing")
    parser.add_argument("--secret-key", default="testing")
    parser.add_argument(
        "--malloc-arena-max",
        type=int,
        default=2,
        help="MALLOC_ARENA_MAX for the API process, as deployed (README); 0 = leave glibc's "
        "default (one arena per thread)",
    )
    args = parser.parse_args()
    rep = Report("upload", f"Upload of {args.size_mib} MiB through the API (`benchmarks.upload`)")

    from minio import Minio

    from api.deps import open_context
    from services.accounts import Identity, issue_token
    from services.directory import sync_catalog
    from services.dossiers import Applicant, DossierIn, submit_dossier
    from services.settings import Settings
    from states.lifecycle import Actor

    work = Path(tempfile.mkdtemp(prefix="motcua-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if args.endpoint:
            endpoint = args.endpoint
        else:
            s3_port = free_port()
            moto = subprocess.Popen(
                [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                 "-p", str(s3_port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(moto)
            endpoint = f"127.0.0.1:{s3_port}"
            wait_http(f"http://{endpoint}/", moto, "moto server")
        bucket = f"motcua-bench-{os.getpid()}"
        secret = "benchmark-secret"
        env = {
            **os.environ,
            "MOTCUA_DATA_DIR": str(work / "data"),
            "MOTCUA_DATABASE_URL": f"sqlite:///{work / 'data' / 'motcua.db'}",
            "MOTCUA_OBJECT_STORE": "minio",
            "MOTCUA_MINIO_ENDPOINT": endpoint,
            "MOTCUA_MINIO_ACCESS_KEY": args.access_key,
            "MOTCUA_MINIO_SECRET_KEY": args.secret_key,
            "MOTCUA_MINIO_BUCKET": bucket,
            "MOTCUA_SECRET_KEY": secret,
            "MOTCUA_DOCUMENT_MAX_FILE_MIB": str(args.size_mib + 16),
            "MOTCUA_DOCUMENT_MAX_DOSSIER_MIB": str(args.size_mib + 64),
        }
        if args.malloc_arena_max > 0:
            env["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)
        else:
            env.pop("MALLOC_ARENA_MAX", None)
        settings = Settings(
            data_dir=work / "data", database_url=env["MOTCUA_DATABASE_URL"], secret_key=secret
        )
        ctx = open_context(settings)
        sync_catalog(ctx)
        dossier = submit_dossier(
            ctx,
            Actor("bench", "counter", CENTRE),
            DossierIn(
                procedure_code="MOJ.lltp", receiving_unit=CENTRE,
                applicant=Applicant(name="Benchmark", id_number="020099000000"),
                components=["request_form", "applicant_id"],
            ),
        )  # fmt: skip
        token = issue_token(
            Identity("bench", "Benchmark", "digitizer", CENTRE), secret, datetime.now().astimezone()
        )

        print(f"generating {args.size_mib} MiB …", flush=True)
        path = work / "scan.pdf"
        digest = make_file(path, args.size_mib * MIB)
        size = path.stat().st_size

        api_port = free_port()
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(api_port), "--log-level", "warning"],
            env=env,
        )  # fmt: skip
        processes.append(api)
        wait_http(f"http://127.0.0.1:{api_port}/healthz", api, "API server")
        rss_ready = status_kib(api.pid, "VmRSS")
        # one small authorized request first: context, catalog, database and store connections
        warm = urllib.request.Request(
            f"http://127.0.0.1:{api_port}/api/v1/dossiers/{dossier.code}/documents",
            headers={"Authorization": f"Bearer {token}"},
        )
        urllib.request.urlopen(warm, timeout=60).close()
        rss_warm = status_kib(api.pid, "VmRSS")

        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(status_kib(api.pid, "VmRSS"))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        api_time, status, text = upload_through_api(api_port, path, dossier.code, token, digest)
        stop.set()
        sampler.join()
        peak_kib = status_kib(api.pid, "VmHWM")
        if status != 201:
            raise SystemExit(f"API upload failed: {status} {text[:500]}")

        client = Minio(
            endpoint, access_key=args.access_key, secret_key=args.secret_key, secure=False,
            region="us-east-1",
        )  # fmt: skip
        started = time.perf_counter()
        client.fput_object(bucket, "benchmark/direct.pdf", str(path))
        direct_time = time.perf_counter() - started

        api_mibs = size / MIB / api_time
        direct_mibs = size / MIB / direct_time
        ratio = api_mibs / direct_mibs
        peak_mib = peak_kib / 1024
        arenas = env.get("MALLOC_ARENA_MAX", "glibc default")
        store = f"MinIO at {args.endpoint}" if args.endpoint else "moto's S3 server on loopback"
        say = rep.print
        say(f"file                      {size / MIB:.0f} MiB, sha256 {digest[:16]}…")
        say(f"S3 endpoint               {store}")
        say(f"API server                uvicorn, 1 worker, MALLOC_ARENA_MAX={arenas}")
        say(f"through the API           {api_time:7.1f} s  {api_mibs:7.1f} MiB/s")
        say(f"straight (minio client)   {direct_time:7.1f} s  {direct_mibs:7.1f} MiB/s (the limit)")
        say(f"ratio API / direct        {ratio:7.2f}   (goal >= 0.80)")
        say(f"API server peak RSS       {peak_mib:7.1f} MiB (VmHWM)   (goal < 150)")
        say(
            f"  RSS when ready {rss_ready / 1024:.1f} MiB, after one small request "
            f"{rss_warm / 1024:.1f} MiB, max sampled during the upload "
            f"{max(samples or [0]) / 1024:.1f} MiB"
        )
        ok = rep.goal(f"throughput ≥ 0.8 × the minio client's ({ratio:.2f})", ratio >= 0.8)
        ok = rep.goal(f"API server peak RSS < 150 MiB ({peak_mib:.1f})", peak_mib < 150) and ok
        print("PASS" if ok else "FAIL")
        rep.save()
        sys.exit(0 if ok else 1)
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for leftover in sorted(work.rglob("*"), reverse=True):
            if leftover.is_file():
                leftover.unlink()
            else:
                leftover.rmdir()
        work.rmdir()


if __name__ == "__main__":
    main()
