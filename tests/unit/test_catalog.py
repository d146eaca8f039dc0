"""The shipped catalog (catalog/): units, rule sets and procedures load and hang together; a broken
file is refused with a CatalogError that names the file and the field."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.catalog import CATALOG_DIR, Catalog, ProcedureVersion, Unit, load_catalog
from services.errors import CatalogError

TODAY = date(2026, 11, 28)
BEFORE_REFORM = date(2024, 6, 1)  # 2018 rule set, three tiers
SAMPLE_DAYS = (BEFORE_REFORM, date(2025, 6, 30), date(2025, 7, 1), TODAY)
LEVEL_CHANGED = ("1.001612", "2.000720", "1.013225")  # district until 30/6/2025, commune after
UNIT_CODE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.H37$")
RECEIVING_KINDS = {"province": {"centre"}, "district": {"district"}, "commune": {"commune", "ward"}}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _valid_on(unit: Unit, day: date) -> bool:
    return unit.valid_from <= day and (unit.valid_to is None or day <= unit.valid_to)


def _in_force(version: ProcedureVersion, day: date) -> bool:
    return version.effective_from <= day and (
        version.effective_to is None or day <= version.effective_to
    )


def _receiving_units(catalog: Catalog, level: str, day: date) -> list[Unit]:
    return [
        unit
        for unit in catalog.units.values()
        if unit.level == level and unit.kind in RECEIVING_KINDS[level] and _valid_on(unit, day)
    ]


# --- the shipped catalog --------------------------------------------------------------------------


def test_shipped_catalog_loads(catalog: Catalog) -> None:
    assert len(catalog.procedures) >= 15
    inter_agency = [p.code for p in catalog.procedures.values() if p.version_at(TODAY).inter_agency]
    assert len(inter_agency) >= 2
    for code in ("MOJ.lltp", "1.012753", "LT.khaisinh-thuongtru-bhyt"):
        assert catalog.procedure(code).version_at(TODAY).inter_agency, code


def test_file_names_match_codes() -> None:
    for path in (CATALOG_DIR / "procedures").glob("*.yaml"):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert path.stem == raw["code"], path


def test_every_procedure_has_a_version_in_force_today(catalog: Catalog) -> None:
    for procedure in catalog.procedures.values():
        version = procedure.version_at(TODAY)
        assert version.effective_to is None, procedure.code
        assert version.level in ("province", "commune"), procedure.code  # no districts since 7/2025


@pytest.mark.parametrize("code", LEVEL_CHANGED)
def test_level_changed_on_1_july_2025(catalog: Catalog, code: str) -> None:
    procedure = catalog.procedure(code)
    before, after = procedure.version_at(BEFORE_REFORM), procedure.version_at(TODAY)
    assert (before.version, before.level, before.effective_to) == (1, "district", date(2025, 6, 30))
    assert (after.version, after.level, after.effective_from) == (2, "commune", date(2025, 7, 1))
    assert procedure.version_at(date(2025, 6, 30)).level == "district"
    assert procedure.version_at(date(2025, 7, 1)).level == "commune"
    assert before.time_limit == after.time_limit


@pytest.mark.parametrize(
    ("code", "limit"),
    [
        ("MOJ.lltp", 10),
        ("1.004222", 7),
        ("1.004194", 3),
        ("1.001612", 3),
        ("1.013225", 15),
        ("1.001193", 0),
        ("2.000815", 0),
    ],
)
def test_published_limits(catalog: Catalog, code: str, limit: int) -> None:
    assert catalog.procedure(code).version_at(TODAY).time_limit == Decimal(limit)


def test_steps(catalog: Catalog) -> None:
    four_on_the_spot = []
    for procedure in catalog.procedures.values():
        for version in procedure.versions:
            shares = sum((step.share for step in version.process), Decimal(0))
            assert shares == version.time_limit, procedure.code
            assert version.process[0].id == "intake", procedure.code
            assert version.process[0].role == "counter", procedure.code
            assert version.process[-1].role in ("leader", "counter"), procedure.code
            if version.process[-1].role == "counter":
                four_on_the_spot.append(procedure.code)
                assert version.time_limit == 0, procedure.code
    assert "2.000815" in four_on_the_spot


def test_step_agencies_resolve_for_a_receiving_unit(catalog: Catalog) -> None:
    checked = 0
    for procedure in catalog.procedures.values():
        for version in procedure.versions:
            for day in (d for d in SAMPLE_DAYS if _in_force(version, d)):
                receivers = _receiving_units(catalog, version.level, day)
                assert receivers, (procedure.code, version.version, day)
                for receiving in receivers:
                    selectors = [version.competent_agency] + [s.agency for s in version.process]
                    for selector in selectors:
                        unit = catalog.unit(catalog.resolve_agency(selector, receiving.code))
                        assert _valid_on(unit, day), (procedure.code, selector, receiving.code)
                    checked += 1
    assert checked > 100


def test_commune_police_resolves(catalog: Catalog) -> None:
    assert catalog.resolve_agency("receiving.police", "000.01.00.H37") == "001.01.00.H37"
    assert catalog.resolve_agency("receiving.police", "000.10.31.H37") == "001.10.31.H37"
    with pytest.raises(CatalogError):
        catalog.resolve_agency("receiving.police", "000.00.01.H37")  # the centre has no police


# --- units ----------------------------------------------------------------------------------------


def test_units(catalog: Catalog) -> None:
    units = catalog.units
    assert units["000.00.00.H37"].kind == "province"
    for unit in units.values():
        assert UNIT_CODE.match(unit.code), unit.code
        assert unit.parent is None or unit.parent in units, unit.code
        assert unit.source.confirmed is False and "verify" in unit.source.note, unit.code
    kinds = {unit.kind for unit in units.values()}
    assert {"centre", "department", "police", "tax", "insurance"} <= kinds
    centres = [u for u in units.values() if u.kind == "centre" and u.level == "province"]
    assert len(centres) == 1


def test_districts_until_30_june_2025(catalog: Catalog) -> None:
    districts = [u for u in catalog.units.values() if u.kind == "district"]
    assert len(districts) == 11
    for district in districts:
        assert district.level == "district"
        assert district.valid_to == date(2025, 6, 30)
        children = [u for u in catalog.units.values() if u.parent == district.code]
        assert any(child.kind == "onestop" for child in children), district.code
    assert not _receiving_units(catalog, "district", date(2025, 7, 1))


def test_communes_since_1_july_2025(catalog: Catalog) -> None:
    new = _receiving_units(catalog, "commune", date(2025, 7, 1))
    assert len(new) >= 10
    wards = {u.name.removeprefix("Ủy ban nhân dân phường ") for u in new if u.kind == "ward"}
    assert {"Tam Thanh", "Lương Văn Tri", "Kỳ Lừa", "Đông Kinh"} <= wards
    for commune in new:
        assert commune.valid_from == date(2025, 7, 1)
        police = catalog.unit(catalog.resolve_agency("receiving.police", commune.code))
        assert (police.kind, police.level) == ("police", "commune")
        assert police.valid_from == date(2025, 7, 1)
    old = _receiving_units(catalog, "commune", BEFORE_REFORM)
    assert 3 <= len(old) <= 4
    for commune in old:
        assert commune.valid_to == date(2025, 6, 30)
        assert catalog.unit(commune.parent or "").kind == "district"


# --- rule sets ------------------------------------------------------------------------------------


def test_rule_sets(catalog: Catalog) -> None:
    assert catalog.rule_set_at(BEFORE_REFORM).id == "2018"
    assert catalog.rule_set_at(date(2025, 6, 30)).id == "2018"
    assert catalog.rule_set_at(date(2025, 7, 1)).id == "2025"
    assert catalog.rule_set_at(TODAY).id == "2025"
    old, new = catalog.rule_set("2018"), catalog.rule_set("2025")
    assert old.tiers == ["province", "district", "commune"]
    assert new.tiers == ["province", "commune"]
    assert (old.forms.control_slip, old.forms.tracking_book, old.forms.stop_notice) == (
        "05",
        "06",
        None,
    )
    assert (new.forms.stop_notice, new.forms.control_slip, new.forms.tracking_book) == (
        "05",
        "06",
        "07",
    )
    assert old.supplement_clock == new.supplement_clock == "pause"


# --- broken copies are refused --------------------------------------------------------------------


def _edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _bad_shares(data: Any) -> None:
    data["versions"][0]["process"][1]["share"] = 4  # 0.5 + 4 + 1.5 ≠ 7


def _missing_time_limit(data: Any) -> None:
    del data["versions"][0]["time_limit"]


def _unknown_unit(data: Any) -> None:
    data["versions"][0]["process"][2]["agency"] = "999.99.99.H37"


def _unit_without_name(data: Any) -> None:
    del data[3]["name"]


@pytest.mark.parametrize(
    ("relative", "change", "field", "reason"),
    [
        ("procedures/1.004222.yaml", _bad_shares, "versions.0", "add up to"),
        ("procedures/1.004222.yaml", _missing_time_limit, "versions.0.time_limit", "required"),
        ("procedures/MOJ.lltp.yaml", _unknown_unit, "process.2.agency", "999.99.99.H37"),
        ("units.yaml", _unit_without_name, "[3].name", "required"),
    ],
    ids=["shares", "missing-field", "unknown-unit", "unit-missing-field"],
)
def test_broken_copy_is_refused(
    tmp_path: Path,
    relative: str,
    change: Callable[[Any], None],
    field: str,
    reason: str,
) -> None:
    folder = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, folder)
    load_catalog(folder)  # the untouched copy loads
    target = folder / relative
    _edit_yaml(target, change)
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder)
    message = str(caught.value)
    assert str(target) in message
    assert field in message
    assert reason in message
    assert caught.value.details["file"] == str(target)


def test_bad_yaml_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, folder)
    target = folder / "procedures" / "2.000815.yaml"
    target.write_text('code: "2.000815"\nname: [unclosed\n', encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder)
    assert str(target) in str(caught.value)
    assert "(YAML)" in str(caught.value)
