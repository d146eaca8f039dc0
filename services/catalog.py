"""Procedure catalog, units and rule sets, loaded from data files in ``catalog/``.

One source of truth: a procedure version's definition drives its state machine, its deadline and
its forms. Files are validated by the pydantic models below; a bad file is refused with a message
that names the file and the field.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.errors import CatalogError
from services.fees import FeeSchedule

CATALOG_DIR = Path(__file__).resolve().parent.parent / "catalog"

Role = Literal["counter", "specialist", "leader", "supervisor", "digitizer", "admin"]
Level = Literal["province", "district", "commune"]
Channel = Literal["counter", "online", "post"]

# State and event names of the lifecycle; a step id may not reuse them.
RESERVED_IDS = frozenset(
    {
        "submitted", "awaiting_supplement", "approved", "rejected", "result_ready", "returned",
        "refused", "withdrawn", "receive", "request_supplement", "supplement", "forward",
        "send_back", "approve", "reject", "mark_result_ready", "return_result", "refuse",
        "withdraw", "extend",
    }
)  # fmt: skip

HalfDays = Annotated[Decimal, Field(ge=0, multiple_of=Decimal("0.5"))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where a fact comes from; ``confirmed: false`` marks "verify" entries of DOMAIN.md §8."""

    confirmed: bool = True
    note: str = ""


class Component(_Strict):
    """Thành phần hồ sơ."""

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    name: str
    originals: int = Field(default=0, ge=0)
    copies: int = Field(default=0, ge=0)
    required: bool = True
    shown_only: bool = False  # papers only shown for comparison: never digitized (DOMAIN.md §5)


class ProcessStep(_Strict):
    """One step of the approved internal process (quy trình nội bộ).

    ``agency`` is an absolute unit code, ``receiving`` (the agency that received the dossier), or
    ``receiving.<kind>`` (the unit of that kind under the receiving agency,
    e.g. the commune police).
    """

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    name: str
    agency: str
    department: str = ""
    role: Role
    share: HalfDays  # working days of the total limit given to this step
    inter_agency: bool = False  # the step is done in another agency's system (liên thông)

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_IDS:
            raise ValueError(f"step id {value!r} is a lifecycle state or event name")
        return value


class ProcedureVersion(_Strict):
    version: int = Field(ge=1)
    effective_from: date
    effective_to: date | None = None
    level: Level
    competent_agency: str  # absolute unit code or "receiving"
    time_limit: HalfDays  # working days; 0 = same-day procedure
    fee: str = ""
    fee_amount: int = Field(default=0, ge=0)  # đồng, the base fee
    fees: FeeSchedule | None = None  # the fee schedule (services/fees.py), when modelled
    components: list[Component] = Field(min_length=1)
    process: list[ProcessStep] = Field(min_length=1)
    require_digitized: Literal["off", "warn", "block"] = "off"
    source: Source = Source()

    @model_validator(mode="after")
    def _check(self) -> ProcedureVersion:
        step_ids = [step.id for step in self.process]
        if len(set(step_ids)) != len(step_ids):
            raise ValueError("process: step ids must be unique")
        component_ids = [c.id for c in self.components]
        if len(set(component_ids)) != len(component_ids):
            raise ValueError("components: ids must be unique")
        total = sum((step.share for step in self.process), Decimal(0))
        if self.time_limit > 0 and total != self.time_limit:
            raise ValueError(
                f"process: step shares add up to {total} working days, "
                f"time_limit is {self.time_limit}"
            )
        if self.time_limit == 0 and total != 0:
            raise ValueError("process: a same-day procedure (time_limit 0) has shares of 0")
        if self.process[-1].role not in ("leader", "counter"):
            raise ValueError("process: the last step is the decision, by a leader (or the counter)")
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        return self

    @property
    def inter_agency(self) -> bool:
        return any(step.inter_agency for step in self.process)


class Procedure(_Strict):
    """Thủ tục hành chính (TTHC) with its versions."""

    code: str  # national database code, e.g. "1.001612"
    name: str
    name_en: str = ""
    field: str
    versions: list[ProcedureVersion] = Field(min_length=1)

    @model_validator(mode="after")
    def _versions_ordered(self) -> Procedure:
        numbers = [v.version for v in self.versions]
        if numbers != sorted(set(numbers)):
            raise ValueError("versions: numbers must be unique and increasing")
        return self

    def version_at(self, day: date) -> ProcedureVersion:
        """The version in force on ``day`` (the dossier keeps it for life)."""
        candidates = [
            v
            for v in self.versions
            if v.effective_from <= day and (v.effective_to is None or day <= v.effective_to)
        ]
        if not candidates:
            raise CatalogError.no_version(self.code, day)
        return candidates[-1]

    def version(self, number: int) -> ProcedureVersion:
        for v in self.versions:
            if v.version == number:
                return v
        raise CatalogError.no_version(self.code, number)


class Unit(_Strict):
    """An agency or unit with its code (Circular 10/2016/TT-BTTTT structure)."""

    code: str
    name: str
    kind: str  # province, department, centre, district, commune, ward, police, tax, insurance…
    level: Level
    parent: str | None = None
    valid_from: date = date(2000, 1, 1)
    valid_to: date | None = None
    source: Source = Source()


class FormSet(_Strict):
    receipt: str
    supplement_request: str
    refusal: str
    apology: str
    control_slip: str
    tracking_book: str
    stop_notice: str | None = None


class RuleSet(_Strict):
    """Rules that changed with the law (DOMAIN.md §0), keyed by effective date."""

    id: str
    name: str
    legal_basis: list[str]
    effective_from: date
    effective_to: date | None = None
    tiers: list[Level]
    forms: FormSet
    supplement_clock: Literal["pause", "restart"] = "pause"


class Catalog:
    """Everything loaded from one catalog folder."""

    def __init__(
        self,
        procedures: Iterable[Procedure],
        units: Iterable[Unit],
        rule_sets: Iterable[RuleSet],
    ) -> None:
        self.procedures = {p.code: p for p in procedures}
        self.units = {u.code: u for u in units}
        self.rule_sets = sorted(rule_sets, key=lambda r: r.effective_from)

    def procedure(self, code: str) -> Procedure:
        try:
            return self.procedures[code]
        except KeyError:
            raise CatalogError.unknown_procedure(code) from None

    def unit(self, code: str) -> Unit:
        try:
            return self.units[code]
        except KeyError:
            raise CatalogError.unknown_unit(code) from None

    def rule_set_at(self, day: date) -> RuleSet:
        for rule_set in reversed(self.rule_sets):
            if rule_set.effective_from <= day and (
                rule_set.effective_to is None or day <= rule_set.effective_to
            ):
                return rule_set
        raise CatalogError.no_rule_set(day)

    def rule_set(self, rule_set_id: str) -> RuleSet:
        for rule_set in self.rule_sets:
            if rule_set.id == rule_set_id:
                return rule_set
        raise CatalogError.no_rule_set(rule_set_id)

    def resolve_agency(self, selector: str, receiving_unit: str) -> str:
        """Turn a step's ``agency`` selector into a unit code."""
        if selector == "receiving":
            return receiving_unit
        if selector.startswith("receiving."):
            kind = selector.removeprefix("receiving.")
            for unit in self.units.values():
                if unit.parent == receiving_unit and unit.kind == kind:
                    return unit.code
            raise CatalogError.unknown_unit(f"{kind} of {receiving_unit}")
        return self.unit(selector).code


def _load_file(path: Path, model: type[BaseModel]) -> list[BaseModel]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogError.bad_file(path, "(YAML)", str(exc)) from None
    items = raw if isinstance(raw, list) else [raw]
    loaded = []
    for index, item in enumerate(items):
        try:
            loaded.append(model.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            location = ".".join(str(part) for part in first["loc"]) or "(root)"
            if isinstance(raw, list):
                location = f"[{index}].{location}"
            raise CatalogError.bad_file(path, location, first["msg"]) from None
    return loaded


def load_catalog(folder: Path = CATALOG_DIR) -> Catalog:
    """Load and cross-check a catalog folder; raise :class:`CatalogError` naming file and field."""
    procedures: list[Procedure] = []
    for path in sorted((folder / "procedures").glob("*.yaml")):
        procedures.extend(_load_file(path, Procedure))  # type: ignore[arg-type]
    units: list[Unit] = _load_file(folder / "units.yaml", Unit)  # type: ignore[assignment]
    rule_sets: list[RuleSet] = _load_file(folder / "rule_sets.yaml", RuleSet)  # type: ignore[assignment]
    catalog = Catalog(procedures, units, rule_sets)
    seen: dict[str, Path] = {}
    for path in sorted((folder / "procedures").glob("*.yaml")):
        for procedure in _load_file(path, Procedure):
            assert isinstance(procedure, Procedure)
            if procedure.code in seen:
                raise CatalogError.bad_file(path, "code", f"duplicate of {seen[procedure.code]}")
            seen[procedure.code] = path
            for v in procedure.versions:
                agencies = [v.competent_agency] + [s.agency for s in v.process]
                for i, selector in enumerate(agencies):
                    if selector == "receiving" or selector.startswith("receiving."):
                        continue
                    if selector not in catalog.units:
                        field = "competent_agency" if i == 0 else f"process.{i - 1}.agency"
                        raise CatalogError.bad_file(
                            path, f"versions.{v.version}.{field}", f"unknown unit {selector!r}"
                        )
    return catalog


@functools.cache
def default_catalog() -> Catalog:
    return load_catalog(CATALOG_DIR)
