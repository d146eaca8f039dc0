"""Who may see which dossier: scoped to the officer's agency and unit (one rule, used by the
API, the pages, the documents and the exports)."""

from __future__ import annotations

from services.catalog import Catalog
from services.errors import OutsideYourAgency
from states.lifecycle import Actor
from storage.models import Dossier

PROVINCE_WIDE_ROLES = frozenset({"supervisor", "admin"})


def units_under(catalog: Catalog, unit_code: str) -> set[str]:
    """``unit_code`` and every unit below it in the catalog's tree."""
    children: dict[str | None, list[str]] = {}
    for unit in catalog.units.values():
        children.setdefault(unit.parent, []).append(unit.code)
    found, todo = set(), [unit_code]
    while todo:
        code = todo.pop()
        if code not in found:
            found.add(code)
            todo.extend(children.get(code, []))
    return found


def dossier_units(dossier: Dossier) -> set[str]:
    return {dossier.receiving_unit, dossier.competent_agency, *dossier.step_units.values()}


def can_see(catalog: Catalog, actor: Actor, dossier: Dossier) -> bool:
    """A province supervisor or admin sees all; a supervisor of a lower unit sees its subtree;
    others see the dossiers that pass through their unit."""
    if actor.role in PROVINCE_WIDE_ROLES:
        unit = catalog.units.get(actor.unit_code)
        if unit is not None and unit.kind == "province":
            return True
        return bool(dossier_units(dossier) & units_under(catalog, actor.unit_code))
    return actor.unit_code in dossier_units(dossier)


def ensure_can_see(catalog: Catalog, actor: Actor, dossier: Dossier) -> None:
    if not can_see(catalog, actor, dossier):
        raise OutsideYourAgency(dossier.code)
