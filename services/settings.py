"""Settings from the environment (prefix ``MOTCUA_``), in one pydantic-settings class."""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOTCUA_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = None  # default: SQLite file in data_dir
    object_store: str = "local"  # "local" (folder in data_dir) or "minio"
    minio_endpoint: str = "127.0.0.1:9000"
    minio_access_key: str = "minioadmin"
    minio_secret_key: str = "minioadmin"
    minio_bucket: str = "motcua"
    minio_secure: bool = False
    minio_region: str = "us-east-1"
    minio_object_lock: bool = False  # create the bucket with object lock (retention)
    minio_part_size_mib: int = 5  # multipart part size (S3 minimum 5): memory per upload
    minio_parallel_uploads: int = 2  # parts in flight per upload
    document_max_file_mib: int = 2048  # per uploaded file
    document_max_dossier_mib: int = 4096  # all current documents of one dossier
    document_retention_days: int = 0  # object-lock retention on stored scans; 0 = none
    secret_key: str = "change-me-in-production"
    public_base_url: str = "http://127.0.0.1:8000"
    catalog_dir: Path | None = None

    # workflows (issue 5): outbox drain, notifications, other agencies, national portal
    smtp_host: str | None = None  # unset: e-mail off, notices kept in the notification log only
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "motcua@langson.gov.vn"
    mail_domain: str = "motcua.langson.gov.vn"  # mailboxes <unit code>@ and <username>@ this
    supervisor_email: str = "giamsat@motcua.langson.gov.vn"
    postal_email: str = "buudien@motcua.langson.gov.vn"  # return of results by public post
    sms_gateway_url: str | None = None  # SMS/Zalo gateway: POST JSON {to, text, key}
    agency_endpoints: dict[str, str] = {}  # unit code -> URL of that agency's system
    agency_default_endpoint: str | None = None  # for units without their own entry
    agency_secrets: dict[str, str] = {}  # unit code -> shared HMAC secret of its callbacks
    agency_default_secret: str | None = None
    portal_endpoint: str | None = None  # national portal status sync; unset: no sync rows
    outbox_batch_size: int = 100
    outbox_max_attempts: int = 8
    outbox_backoff_s: float = 5.0  # first retry after this, doubling up to outbox_backoff_max_s
    outbox_backoff_max_s: float = 3600.0
    outbox_lease_s: float = 120.0  # a claimed row whose worker died is claimed again after this
    outbox_concurrency: int = 16
    outbox_http_timeout_s: float = 10.0
    outbox_poll_s: float = 1.0
    deadline_due_soon_minutes: int = 480  # ≤ 1 working day left
    deadline_due_soon_share: float = 0.2  # or ≤ 20 % of the step's time left
    deadline_watch_interval_s: float = 300.0
    embedded_workers: bool = True  # `motcua serve` drains the outbox in a background thread

    # threads serving the blocking request handlers in each API process (anyio's default is
    # 40); fewer fight less over the GIL: benchmarks.transitions gave 163 transitions/s with
    # 40, 181 with 8, 203 with 4 (4 Dec); 238 with 8, 270 with 4, 239 with 2 (6 Dec, two runs
    # each). A slow page (a report) holds one of them: raise it for many such users. Streamed
    # uploads have threads of their own (16).
    request_threads: int = Field(default=4, ge=1, le=400)

    # request limits (api/limits.py); streamed document uploads have their own (document_max_*)
    request_max_body_kib: int = 1024  # JSON and urlencoded bodies, raw bodies: 413 above
    request_max_form_mib: int = 12  # multipart forms (a 10 MiB feedback attachment + fields)
    request_max_header_kib: int = 32  # all request headers together: 431 above

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'motcua.db').resolve()}"


@functools.cache
def get_settings() -> Settings:
    return Settings()
