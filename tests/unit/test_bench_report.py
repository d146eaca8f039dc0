"""benchmarks.report: each command replaces only its own section of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import HEADER, NOTES, Report, replace_section


def _section(name: str, body: str) -> str:
    return f"<!-- bench:{name} -->\n{body}\n<!-- /bench:{name} -->\n"


def test_a_section_is_replaced_and_the_others_kept() -> None:
    document = HEADER
    for name in ("clock", "transitions", "upload"):
        document = replace_section(document, name, _section(name, f"old {name}"))
    updated = replace_section(document, "upload", _section("upload", "new upload"))
    assert "new upload" in updated and "old upload" not in updated
    assert "old clock" in updated and "old transitions" in updated
    assert updated.count("<!-- bench:upload -->") == 1
    # sections follow the order of the commands, whatever order they ran in
    assert updated.index("bench:transitions") < updated.index("bench:upload")
    assert updated.index("bench:upload") < updated.index("bench:clock")


def test_dashboard_sizes_are_separate_sections() -> None:
    document = replace_section(HEADER, "clock", _section("clock", "c"))
    document = replace_section(document, "dashboard-1M", _section("dashboard-1M", "one"))
    document = replace_section(document, "dashboard-10M", _section("dashboard-10M", "ten"))
    document = replace_section(document, "dashboard-1M", _section("dashboard-1M", "one again"))
    assert "one again" in document and "ten" in document and "\none\n" not in document
    assert document.index("bench:dashboard-10M") < document.index("bench:clock")


def test_save_writes_machine_command_figures_and_goals(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(HEADER + "\n" + _section("clock", "kept"), encoding="utf-8")
    report = Report("handoffs", "Handoffs", command="python -m benchmarks.handoffs --rate 9")
    report.print("throughput: 412 handoffs/s")
    report.goal("≥ 200 handoffs/s", True)
    report.goal("p95 < 2 s", False)
    report.save(path)
    text = path.read_text(encoding="utf-8")
    assert "kept" in text
    assert "throughput: 412 handoffs/s" in text
    assert "`python -m benchmarks.handoffs --rate 9`" in text
    assert "cores" in text and "load average" in text and "- date: " in text
    assert "| ≥ 200 handoffs/s | met |" in text
    assert "| p95 < 2 s | **not met** |" in text


def test_notes_stay_last() -> None:
    document = HEADER + "\n" + NOTES + "\n## Notes\nkept by hand\n"
    document = replace_section(document, "clock", _section("clock", "c"))
    document = replace_section(document, "transitions", _section("transitions", "t"))
    assert document.index("bench:transitions") < document.index("bench:clock")
    assert document.index("bench:clock") < document.index(NOTES)
    assert document.endswith("kept by hand\n")
