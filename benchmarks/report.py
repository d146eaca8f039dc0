"""BENCHMARKS.md, written by the benchmark commands themselves.

Each command builds a :class:`Report`, prints its figures through it and calls :meth:`Report.save`
at the end: its own section of BENCHMARKS.md (between ``<!-- bench:NAME -->`` markers) is replaced
with the machine (CPU model, cores, RAM, PostgreSQL version, load average at start and end), the
date, the command line, the figures and the goals with whether each was met. The other sections are
left as they are, so the file always holds the latest run of each command."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
ORDER = ("transitions", "dashboard", "upload", "handoffs", "clock")
NOTES = "<!-- notes -->"  # hand-written notes below it stay last
HEADER = """# Benchmarks

Written by the benchmark commands themselves (`make bench` runs them all; README, "Benchmarks"):
each command replaces its own section below with its latest run, the machine and the date.
Figures are from one run on the machine named in the section; the machine may have been shared
with other work (see the load average).
"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def postgres_version(url: str) -> str:
    """``server_version`` of the server at ``url`` (any database on it); '' if unreachable."""
    try:
        import psycopg

        plain = re.sub(r"^postgresql\+\w+://", "postgresql://", url)
        with psycopg.connect(plain, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else ""
    except Exception:
        return ""


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip()
    except OSError:
        return ""


@dataclass
class Report:
    """The figures of one benchmark run, printed as they come and saved at the end."""

    name: str
    title: str
    database_url: str | None = None
    command: str = ""
    lines: list[str] = field(default_factory=list)
    goals: list[tuple[str, bool]] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now().astimezone())
    load_at_start: str = field(default_factory=load_average)

    def __post_init__(self) -> None:
        if not self.command:
            module = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else self.name
            self.command = " ".join([f"python -m benchmarks.{module}", *sys.argv[1:]])

    def print(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def goal(self, description: str, met: bool) -> bool:
        self.print(f"goal {description}: {'met' if met else 'NOT met'}")
        self.goals.append((description, met))
        return met

    def section(self) -> str:
        machine = (
            f"{cpu_model()}, {os.cpu_count()} cores, {ram_gib():.0f} GiB RAM, "
            f"Python {platform.python_version()}"
        )
        if self.database_url:
            version = postgres_version(self.database_url)
            machine += f", PostgreSQL {version or '(unreachable)'}"
        elapsed = (datetime.now().astimezone() - self.started).total_seconds()
        commit = git_commit()
        out = [
            f"<!-- bench:{self.name} -->",
            f"## {self.title}",
            "",
            f"- date: {self.started:%Y-%m-%d %H:%M %Z} ({elapsed:.0f} s)"
            + (f", commit {commit}" if commit else ""),
            f"- machine: {machine}",
            f"- load average (1, 5, 15 min): {self.load_at_start} at start, "
            f"{load_average()} at end",
            f"- command: `{self.command}`",
            "",
            "```",
            *self.lines,
            "```",
        ]
        if self.goals:
            out += ["", "| goal | result |", "| --- | --- |"]
            out += [f"| {text} | {'met' if met else '**not met**'} |" for text, met in self.goals]
        out.append(f"<!-- /bench:{self.name} -->")
        return "\n".join(out) + "\n"

    def save(self, path: Path | None = None) -> Path:
        path = path or BENCHMARKS_MD
        current = path.read_text(encoding="utf-8") if path.exists() else HEADER
        path.write_text(replace_section(current, self.name, self.section()), encoding="utf-8")
        print(f"written to {path.name} (section {self.name})", flush=True)
        return path


def _rank(name: str) -> int:
    """Place of a section: its command's place in :data:`ORDER` (``dashboard-1M`` is a
    ``dashboard`` section); unknown commands last."""
    for i, command in enumerate(ORDER):
        if name == command or name.startswith(command + "-"):
            return i
    return len(ORDER)


def replace_section(document: str, name: str, section: str) -> str:
    """``document`` with the section ``name`` replaced by ``section`` (added if absent, in the
    order of :data:`ORDER`, unknown names at the end)."""
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n?", re.DOTALL
    )
    if pattern.search(document):
        return pattern.sub(lambda _: section, document, count=1)
    rank = _rank(name)
    for match in re.finditer(r"<!-- bench:([\w.-]+) -->|" + re.escape(NOTES), document):
        if match.group(0) == NOTES or _rank(match.group(1)) > rank:
            return document[: match.start()] + section + "\n" + document[match.start() :]
    return document.rstrip("\n") + "\n\n" + section
