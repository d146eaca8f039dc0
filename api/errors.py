"""Errors as RFC 9457 problem details (``application/problem+json``).

Each ``DomainError`` subclass maps to one status; the body carries ``type``, ``title``,
``status``, the stable ``code``, ``detail`` in Vietnamese and ``detail_en`` in English.
A subclass defined elsewhere may set ``http_status`` itself; otherwise it answers 422.

``OutsideYourAgency`` answers 403, not 404: dossier codes are sequential and printed on every
receipt, so hiding existence from a signed-in officer gains nothing, while a clear 403 helps the
officer. The citizen lookup, in contrast, answers "not found" for wrong digits.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.accounts import (
    BadCredentials,
    Forbidden,
    NotAuthenticated,
    TooManyAttempts,
)
from services.errors import (
    CatalogError,
    DomainError,
    DossierNotFound,
    InvalidInput,
    OutsideYourAgency,
    StaleDossier,
    TransitionRejected,
    UnknownUser,
)

log = logging.getLogger("motcua.api")

PROBLEM_TYPE = "urn:motcua:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"

STATUS_OF: dict[type[DomainError], int] = {
    DossierNotFound: 404,
    UnknownUser: 404,
    OutsideYourAgency: 403,
    Forbidden: 403,
    StaleDossier: 412,  # the If-Match version is no longer the dossier's
    TransitionRejected: 409,
    InvalidInput: 422,
    CatalogError: 422,
    BadCredentials: 401,
    NotAuthenticated: 401,
    TooManyAttempts: 429,
}

# details that may be echoed to the client (never personal data)
_SAFE_DETAILS = {"dossier", "procedure", "unit", "rule", "event", "state", "expected", "actual",
                 "roles", "field", "retry_after"}  # fmt: skip


class PreconditionRequired(DomainError):
    code = "if_match_required"
    http_status = 428

    def __init__(self) -> None:
        super().__init__(
            "Cần tiêu đề If-Match với ETag của hồ sơ (phiên bản đang xem)",
            "An If-Match header with the dossier's ETag is required",
        )


class ResourceNotFound(DomainError):
    code = "not_found"
    http_status = 404


def status_of(error: DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
        status = cls.__dict__.get("http_status")
        if isinstance(status, int):
            return status
    return 422


def problem(
    status: int,
    code: str,
    detail_vi: str,
    detail_en: str,
    instance: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else code,
        "status": status,
        "code": code,
        "detail": detail_vi,
        "detail_en": detail_en,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        body, status_code=body["status"], headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def domain_problem(error: DomainError, instance: str | None = None) -> tuple[dict[str, Any], int]:
    status = status_of(error)
    extra = {k: v for k, v in error.details.items() if k in _SAFE_DETAILS and v is not None}
    return problem(
        status, error.code, error.message_vi, error.message_en, instance, **extra
    ), status


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


async def _on_domain_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, DomainError)
    body, status = domain_problem(error, request.url.path)
    if status == 401 and _wants_html(request):
        return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, TooManyAttempts):
        headers["Retry-After"] = str(error.retry_after)
    return problem_response(body, headers)


async def _on_validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in error.errors()
    ]
    return problem_response(
        problem(
            422,
            "validation_failed",
            "Dữ liệu gửi lên không hợp lệ",
            "The request is not valid",
            request.url.path,
            errors=errors,
        )
    )


async def _on_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    status = error.status_code
    texts = {
        404: ("not_found", "Không tìm thấy", "Not found"),
        405: ("method_not_allowed", "Phương thức không được hỗ trợ", "Method not allowed"),
    }
    code, vi, en = texts.get(status, ("http_error", str(error.detail), str(error.detail)))
    return problem_response(
        problem(status, code, vi, en, request.url.path), dict(error.headers or {})
    )


RETRY_AFTER_S = 5  # seconds a client waits before retrying after a 503


def unavailable(code: str, detail_vi: str, detail_en: str, instance: str | None = None) -> Response:
    """503 with ``Retry-After``: a backing service is away for a moment. The request's
    transaction did not commit (or, if the connection broke during the commit, its outcome is
    unknown): retry with the same ``Idempotency-Key`` / ``If-Match``, never applied twice."""
    return problem_response(
        problem(503, code, detail_vi, detail_en, instance, retry_after=RETRY_AFTER_S),
        {"Retry-After": str(RETRY_AFTER_S)},
    )


def database_unavailable(error: BaseException) -> bool:
    """The database connection failed or was lost (server down, restarting, pool exhausted),
    as opposed to a statement that is wrong."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


async def _on_database_error(request: Request, error: Exception) -> Response:
    if not database_unavailable(error):
        return await _on_unexpected(request, error)
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, error)
    return unavailable(
        "database_unavailable",
        "Cơ sở dữ liệu tạm thời không truy cập được; vui lòng thử lại sau ít giây",
        "The database is unavailable for a moment; please retry in a few seconds",
        request.url.path,
    )


async def _on_object_store_error(request: Request, error: Exception) -> Response:
    log.warning("object store unavailable on %s %s: %s", request.method, request.url.path, error)
    return unavailable(
        "object_store_unavailable",
        "Kho lưu trữ tệp tạm thời không truy cập được; chưa lưu gì, vui lòng thử lại sau ít giây",
        "The file store is unavailable for a moment; nothing was stored, please retry shortly",
        request.url.path,
    )


async def _on_unexpected(request: Request, error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        problem(
            500,
            "internal_error",
            "Lỗi hệ thống; vui lòng thử lại sau",
            "Internal error; please try again later",
            request.url.path,
        )
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(DBAPIError, _on_database_error)
    app.add_exception_handler(PoolTimeout, _on_database_error)
    # the S3 endpoint unreachable: the minio SDK's transport (urllib3) gave up after its
    # retries, or the endpoint answered 5xx (minio ServerError)
    from minio.error import ServerError
    from urllib3.exceptions import HTTPError as TransportError

    app.add_exception_handler(TransportError, _on_object_store_error)
    app.add_exception_handler(ServerError, _on_object_store_error)
    app.add_exception_handler(Exception, _on_unexpected)
