"""Import of a hand-made history (Tết, supplementations, inter-agency steps, late dossiers),
then the report compared with the CSV computed by hand (DOMAIN.md §2 Counting).

The hand computation (working time 07:30–11:30, 13:30–17:30; Tết 2025 off 27–31/1; 1/1 off):

centre 000.00.01.H37, MOJ.lltp (10 working days = 80 h; steps intake 0.5 / Justice 1.5 /
police 6, inter-agency / Justice 2):
- LLTP-2024-0911 received 30/12/2024 10:00 → due 14/1 10:00; result ready 14/1 10:00, exactly at
  the due instant → on time; received before the period (carried over), finished in it.
- LLTP-2025-0042 received Fri 24/1 09:30 (6 h that day, then Tết and the weekend) → due Fri 14/2
  09:30; result ready 12/2 → early.
- LLTP-2025-0077 refused at the counter: never received, never counted.
- LLTP-2025-0103 received 17/2 14:00 → due 3/3 08:30; the police's verification (due 26/2
  16:00) forwarded 3/3 09:00 → late step; apology slip, result ready 4/3 → late.
- LLTP-2025-0150 received 10/3 09:00 → due 24/3 09:00; paused 12/3 for supplementation, withdrawn
  2/4: at the end of 31/3 in progress, clock stopped before its due instant → not overdue (its
  current columns, paused_at cleared by the withdrawal, would say overdue: replayed from the log).
→ received 3, finished 3 (1 early, 1 on time, 1 late), in progress 1, overdue 0, 66.67.

district one-stop 000.01.31.H37, 1.001612 v1 (3 working days; intake 0.5 / appraisal 2 /
approval 0.5, all at the receiving unit):
- HKD-2025-0301 received 3/3 08:00 → due 6/3 08:00; paused 4/3 10:00 with 14 h left, papers back
  10/3 08:00 → due 11/3 16:00; result ready 11/3 16:00 → on time.
- HKD-2025-0305 received 5/3 15:30 (after 15:00 → count from 6/3 07:30) → due 10/3 17:30; result
  ready 13/3 → late (with its apology slip).
- HKD-2025-0317 withdrawn 18/3: received, counted apart.
- HKD-2025-0326 received 26/3 09:00 → due 31/3 09:00; still at appraisal at the end of 31/3 →
  in progress and overdue (finished in April, outside the period).
→ received 4, finished 2 (0 early, 1 on time, 1 late), in progress 1, overdue 1, 50.00.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

from sqlmodel import select

from api.cli_report import on_time_table, to_csv
from services.clock import TZ
from services.context import Context
from services.importer import import_file, import_lines
from storage.models import Dossier, DossierEvent, DossierSequence

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "catalog" / "examples" / "import-example.jsonl"
Q1 = (date(2025, 1, 1), date(2025, 3, 31))

EXPECTED_BY_UNIT = """\
unit_code,received,finished,early,on_time,late,in_progress,overdue,on_time_rate
000.00.01.H37,3,3,1,1,1,1,0,66.67
000.01.31.H37,4,2,0,1,1,1,1,50.00
"""
EXPECTED_BY_PROCEDURE = """\
procedure_code,received,finished,early,on_time,late,in_progress,overdue,on_time_rate
1.001612,4,2,0,1,1,1,1,50.00
MOJ.lltp,3,3,1,1,1,1,0,66.67
"""
# steps left in Q1 by the unit that ran them; late dossiers attributed to the late steps' units
EXPECTED_BY_RESPONSIBLE_UNIT = """\
unit_code,steps_finished,steps_early,steps_on_time,steps_late,late_dossiers,inter_agency_steps_late,step_on_time_rate
000.00.01.H37,3,1,2,0,0,0,100.00
000.00.02.H37,5,2,3,0,0,0,100.00
000.00.20.H37,3,1,1,1,1,1,66.67
000.01.31.H37,8,0,5,3,1,0,62.50
"""


def test_import_then_report_equals_the_hand_computed_csv(ctx: Context) -> None:
    result = import_file(ctx, EXAMPLE)
    assert (result.imported, result.skipped) == (9, 1)
    assert [(r.line, r.ref) for r in result.refused] == [
        (10, "HKD-2025-0999"),
        (11, "LLTP-2025-0998"),
    ]
    assert "sự kiện thứ 3 (return_result" in result.refused[1].message_vi
    assert "event 3 (return_result" in result.refused[1].message_en
    assert to_csv(on_time_table(ctx, *Q1, "unit")) == EXPECTED_BY_UNIT
    assert to_csv(on_time_table(ctx, *Q1, "procedure")) == EXPECTED_BY_PROCEDURE
    assert to_csv(on_time_table(ctx, *Q1, "responsible-unit")) == EXPECTED_BY_RESPONSIBLE_UNIT

    with ctx.uow() as uow:
        dossiers = {d.external_ref: d for d in uow.session.exec(select(Dossier)).all()}
        assert "LLTP-2025-0998" not in dossiers and "HKD-2025-0999" not in dossiers
        # a refused line leaves nothing: no event, no dossier number taken
        assert uow.session.exec(select(DossierEvent)).all()
        sequences = {
            (s.unit_code, s.day): s.last for s in uow.session.exec(select(DossierSequence)).all()
        }
    assert ("000.00.01.H37", date(2025, 3, 4)) not in sequences
    assert ("000.01.31.H37", date(2025, 3, 4)) not in sequences
    tet = dossiers["LLTP-2025-0042"]
    assert tet.due_at == datetime(2025, 2, 14, 9, 30, tzinfo=TZ)
    assert (tet.procedure_version, tet.rule_set, tet.channel) == (1, "2018", "online")
    assert tet.code == "000.00.01.H37-250124-0001"
    resumed = dossiers["HKD-2025-0301"]
    assert resumed.due_at == datetime(2025, 3, 11, 16, 0, tzinfo=TZ)
    assert resumed.timeliness == "on_time"
    assert dossiers["LLTP-2025-0103"].apology_at is not None
    assert dossiers["LLTP-2025-0077"].received_at is None  # refused at the counter

    # idempotent by ref: a second run imports nothing and changes no number
    again = import_file(ctx, EXAMPLE)
    assert (again.imported, again.skipped, len(again.refused)) == (0, 10, 2)
    assert to_csv(on_time_table(ctx, *Q1, "unit")) == EXPECTED_BY_UNIT


def test_invalid_lines_are_refused_with_their_number_and_reason(ctx: Context) -> None:
    lines = [
        "{not json",
        '{"ref": "x1", "procedure": "MOJ.lltp", "unit": "000.00.01.H37", "channel": "fax",'
        ' "received_at": "2025-03-03T09:00:00+07:00", "applicant": {"name": "A"}, "events": []}',
        '{"ref": "x2", "procedure": "MOJ.lltp", "unit": "000.00.01.H37", "channel": "counter",'
        ' "received_at": "2025-03-03T09:00:00", "applicant": {"name": "A"}, "events": []}',
        '{"ref": "x3", "procedure": "NO.such", "unit": "000.00.01.H37", "channel": "counter",'
        ' "received_at": "2025-03-03T09:00:00+07:00", "applicant": {"name": "A"}, "events": []}',
        '{"ref": "x4", "procedure": "MOJ.lltp", "unit": "000.00.01.H37", "channel": "counter",'
        ' "received_at": "2025-03-03T09:00:00+07:00", "applicant": {"name": "A"},'
        ' "events": [{"event": "forward", "at": "2025-03-02T09:00:00+07:00", "role": "counter"}]}',
        '{"ref": "x5", "procedure": "MOJ.lltp", "unit": "000.00.01.H37", "channel": "counter",'
        ' "received_at": "2025-03-03T09:00:00+07:00", "applicant": {"name": "A"}, "events": []}',
    ]
    result = import_lines(ctx, lines)
    assert result.imported == 1 and result.codes == {"x5": "000.00.01.H37-250303-0001"}
    refused = {r.line: r for r in result.refused}
    assert sorted(refused) == [1, 2, 3, 4, 5]
    assert "JSON" in refused[1].message_vi
    assert "channel" in refused[2].message_en
    assert "received_at" in refused[3].message_en
    assert "NO.such" in refused[4].message_vi
    assert "earlier" in refused[5].message_en
    assert str(refused[2]).startswith("Dòng 2 (x1): ")


def test_cli_import_and_report_csv_and_xlsx(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")} | {
        "MOTCUA_DATA_DIR": str(tmp_path / "data")
    }
    motcua = [str(Path(sys.executable).parent / "motcua")]
    run = subprocess.run(
        [*motcua, "import", str(EXAMPLE)], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "Dòng 10 (HKD-2025-0999)" in run.stderr and "Line 11 (LLTP-2025-0998)" in run.stderr
    report = subprocess.run(
        [*motcua, "report", "on-time", "--from", "2025-01-01", "--to", "2025-03-31",
         "--by", "unit", "--format", "csv"],
        env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert report.stdout == EXPECTED_BY_UNIT
    out = tmp_path / "q1.xlsx"
    xlsx = subprocess.run(
        [*motcua, "report", "on-time", "--from", "2025-01-01", "--to", "2025-03-31",
         "--by", "procedure", "--format", "xlsx", "--out", str(out)],
        env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert xlsx.returncode == 0, xlsx.stderr
    from openpyxl import load_workbook

    sheet = load_workbook(out).active
    assert sheet is not None
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0] == EXPECTED_BY_PROCEDURE.splitlines()[0].split(",")
    assert values[1] == ["1.001612", 4, 2, 0, 1, 1, 1, 1, 50.0]
    assert values[2] == ["MOJ.lltp", 3, 3, 1, 1, 1, 1, 0, 66.67]
