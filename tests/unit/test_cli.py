"""The CLI contracts: `motcua due-date` and `motcua procedures validate`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("received", "days", "due"),
    [
        ("2025-01-24T09:30:00+07:00", "5", "2025-02-07T09:30:00+07:00"),  # across Tết 2025
        # after 15:00 on the eve of Tết 2024: counting starts Thu 15/2, a due on 17:30 stays
        ("2024-02-07T16:00:00+07:00", "1", "2024-02-15T17:30:00+07:00"),
        ("2024-04-26T10:00:00+07:00", "2", "2024-05-03T10:00:00+07:00"),  # 29/4–1/5 off
        ("2024-05-03T10:00:00+07:00", "1", "2024-05-04T10:00:00+07:00"),  # Sat 4/5/2024 works
        ("2026-01-09T15:30:00+07:00", "0", "2026-01-10T17:30:00+07:00"),  # Sat 10/1/2026 works
        ("2025-12-31T10:00:00+07:00", "1", "2026-01-05T10:00:00+07:00"),  # 1/1 and 2/1/2026 off
    ],
)
def test_due_date_prints_one_iso_line(received: str, days: str, due: str) -> None:
    result = runner.invoke(app, ["due-date", "--received", received, "--working-days", days])
    assert result.exit_code == 0, result.output
    assert result.output == due + "\n"


def test_due_date_half_days() -> None:
    result = runner.invoke(
        app, ["due-date", "--received", "2025-03-03T08:00:00+07:00", "--working-days", "0.5"]
    )
    assert result.output.strip() == "2025-03-03T14:00:00+07:00"


def test_due_date_refuses_bad_input_in_both_languages() -> None:
    result = runner.invoke(
        app, ["due-date", "--received", "2025-03-03T08:00", "--working-days", "1"]
    )
    assert result.exit_code == 2
    result = runner.invoke(
        app, ["due-date", "--received", "2025-03-03T08:00:00+07:00", "--working-days", "0.3"]
    )
    assert result.exit_code == 2


def test_validate_accepts_the_catalog_and_names_file_and_field(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["procedures", "validate", str(ROOT / "catalog")])
    assert ok.exit_code == 0 and ok.output.startswith("OK: ")
    broken = tmp_path / "catalog"
    shutil.copytree(ROOT / "catalog", broken)
    target = broken / "procedures" / "1.004222.yaml"
    text = target.read_text(encoding="utf-8")
    target.write_text(re.sub(r"time_limit: 7\b", "time_limit: 9", text, count=1), "utf-8")
    bad = runner.invoke(app, ["procedures", "validate", str(broken)])
    assert bad.exit_code == 2
    assert "1.004222.yaml" in bad.output and "time_limit" in bad.output.replace("\n", "")


def test_the_installed_command_is_there() -> None:
    motcua = Path(sys.executable).parent / "motcua"
    out = subprocess.run(
        [str(motcua), "due-date", "--received", "2025-01-24T09:30:00+07:00", "--working-days", "5"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "2025-02-07T09:30:00+07:00\n"
