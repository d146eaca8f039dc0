"""Sign-in tokens: the verified identity is cached per token, the expiry is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.accounts import Identity, NotAuthenticated, issue_token, read_token

SECRET = "unit-test-secret-key-0123456789abcdef"
NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
OFFICER = Identity("canbo1", "Nguyễn Văn A", "counter", "000.00.01.H37")


def test_a_token_read_twice_still_expires_on_time() -> None:
    token = issue_token(OFFICER, SECRET, NOW, hours=1)
    assert read_token(token, SECRET, NOW) == OFFICER
    assert read_token(token, SECRET, NOW + timedelta(minutes=59)) == OFFICER  # from the cache
    with pytest.raises(NotAuthenticated):
        read_token(token, SECRET, NOW + timedelta(hours=1))


def test_a_token_is_checked_against_the_secret_it_is_read_with() -> None:
    token = issue_token(OFFICER, SECRET, NOW)
    assert read_token(token, SECRET, NOW) == OFFICER
    with pytest.raises(NotAuthenticated):
        read_token(token, "another-secret-key-0123456789abcdef", NOW)
    with pytest.raises(NotAuthenticated):
        read_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB"), SECRET, NOW)
