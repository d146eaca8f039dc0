"""Settings from the environment (prefix ``MOTCUA_``), in one pydantic-settings class."""

from __future__ import annotations

import functools
from pathlib import Path

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
    document_max_file_mib: int = 2048  # per uploaded file
    document_max_dossier_mib: int = 4096  # all current documents of one dossier
    document_retention_days: int = 0  # object-lock retention on stored scans; 0 = none
    secret_key: str = "change-me-in-production"
    public_base_url: str = "http://127.0.0.1:8000"
    catalog_dir: Path | None = None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'motcua.db').resolve()}"


@functools.cache
def get_settings() -> Settings:
    return Settings()
