"""Typed domain errors, each with a stable ``code`` and a message in Vietnamese and English."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every business error. ``api/errors.py`` maps the class to an HTTP status."""

    code: ClassVar[str] = "domain_error"

    def __init__(self, message_vi: str, message_en: str, **details: Any) -> None:
        super().__init__(f"{message_vi} / {message_en}")
        self.message_vi = message_vi
        self.message_en = message_en
        self.details = details


class CatalogError(DomainError):
    code = "catalog_invalid"

    @classmethod
    def bad_file(cls, path: Path, field: str, reason: str) -> CatalogError:
        return cls(
            f"Tệp danh mục {path}: trường {field} không hợp lệ: {reason}",
            f"Catalog file {path}: field {field} is invalid: {reason}",
            file=str(path),
            field=field,
        )

    @classmethod
    def unknown_procedure(cls, code: str) -> CatalogError:
        return cls(f"Không có thủ tục {code}", f"No procedure {code}", procedure=code)

    @classmethod
    def unknown_unit(cls, code: str) -> CatalogError:
        return cls(f"Không có đơn vị {code}", f"No unit {code}", unit=code)

    @classmethod
    def no_version(cls, code: str, when: date | int) -> CatalogError:
        return cls(
            f"Thủ tục {code} không có phiên bản áp dụng cho {when}",
            f"Procedure {code} has no version for {when}",
            procedure=code,
        )

    @classmethod
    def no_rule_set(cls, when: date | str) -> CatalogError:
        return cls(
            f"Không có bộ quy tắc áp dụng cho {when}",
            f"No rule set in force for {when}",
        )


class InvalidInput(DomainError):
    code = "invalid_input"


class DossierNotFound(DomainError):
    code = "dossier_not_found"

    def __init__(self, code: str) -> None:
        super().__init__(f"Không tìm thấy hồ sơ {code}", f"Dossier {code} not found", dossier=code)


class StaleDossier(DomainError):
    """Optimistic lock: another officer changed the dossier first."""

    code = "dossier_changed"

    def __init__(self, code: str, expected: int, actual: int | None = None) -> None:
        super().__init__(
            f"Hồ sơ {code} vừa được người khác cập nhật (phiên bản {expected} đã cũ); "
            "hãy tải lại và thử lại",
            f"Dossier {code} was changed by someone else (version {expected} is stale); "
            "reload and try again",
            dossier=code,
            expected=expected,
            actual=actual,
        )


class TransitionRejected(DomainError):
    """The lifecycle does not allow this event now, with the reason."""

    code = "transition_rejected"


class OutsideYourAgency(DomainError):
    code = "outside_your_agency"

    def __init__(self, code: str) -> None:
        super().__init__(
            f"Hồ sơ {code} không thuộc đơn vị của bạn",
            f"Dossier {code} is outside your agency",
            dossier=code,
        )


class UnknownUser(DomainError):
    code = "unknown_user"

    def __init__(self, username: str) -> None:
        super().__init__(f"Không có cán bộ {username}", f"No officer {username}", username=username)
