"""Fee quotes from the catalog's fee schedules (DOMAIN.md §8)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.catalog import default_catalog
from services.errors import InvalidInput
from services.fees import FeeInput, FeeSchedule, quote


def schedule(code: str) -> FeeSchedule:
    fees = default_catalog().procedure(code).versions[-1].fees
    assert fees is not None
    return fees


REQUESTED = date(2025, 3, 3)


def test_birth_registration_on_time_is_free_and_late_pays_the_fee() -> None:
    fees = schedule("1.001193")
    on_time = quote(fees, FeeInput(event_date=REQUESTED - timedelta(days=60)), REQUESTED)
    assert on_time.amount == 0 and on_time.exemption and "đúng hạn" in on_time.exemption
    late = quote(fees, FeeInput(event_date=REQUESTED - timedelta(days=61)), REQUESTED)
    assert late.amount == 8000 and late.exemption is None
    exempt = quote(
        fees,
        FeeInput(event_date=REQUESTED - timedelta(days=400), group="poor_household"),
        REQUESTED,
    )
    assert exempt.amount == 0 and "hộ nghèo" in (exempt.exemption or "")
    with pytest.raises(InvalidInput):
        quote(fees, FeeInput(), REQUESTED)  # the date of birth is needed
    with pytest.raises(InvalidInput):
        quote(fees, FeeInput(event_date=REQUESTED + timedelta(days=1)), REQUESTED)


def test_criminal_record_reduced_rate_and_copies_from_the_third() -> None:
    fees = schedule("MOJ.lltp")
    assert quote(fees, FeeInput(), REQUESTED).amount == 200_000
    assert quote(fees, FeeInput(copies=2), REQUESTED).amount == 200_000
    assert quote(fees, FeeInput(copies=3), REQUESTED).amount == 205_000
    assert quote(fees, FeeInput(copies=5), REQUESTED).amount == 215_000
    assert quote(fees, FeeInput(group="student", copies=3), REQUESTED).amount == 105_000
    with pytest.raises(InvalidInput):
        quote(fees, FeeInput(group="unknown"), REQUESTED)


def test_certified_copies_per_page_with_the_cap() -> None:
    fees = schedule("2.000815")
    assert quote(fees, FeeInput(pages=1), REQUESTED).amount == 2_000
    assert quote(fees, FeeInput(pages=2, copies=3), REQUESTED).amount == 12_000
    assert quote(fees, FeeInput(pages=5), REQUESTED).amount == 2 * 2_000 + 3 * 1_000
    assert quote(fees, FeeInput(pages=1000), REQUESTED).amount == 200_000  # cap per copy
    with pytest.raises(InvalidInput):
        quote(fees, FeeInput(pages=0), REQUESTED)


@given(st.integers(min_value=1, max_value=400), st.integers(min_value=1, max_value=20))
def test_per_page_amount_is_the_tier_formula(pages: int, copies: int) -> None:
    expected = min(2_000 * min(pages, 2) + 1_000 * max(pages - 2, 0), 200_000) * copies
    assert quote(schedule("2.000815"), FeeInput(pages=pages, copies=copies), REQUESTED).amount == (
        expected
    )
    lines = quote(schedule("2.000815"), FeeInput(pages=pages, copies=copies), REQUESTED).lines
    assert sum(line.amount for line in lines) == expected
