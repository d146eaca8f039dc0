"""uvicorn's logging for ``motcua serve``: its own configuration, with the access lines
timestamped and written by the standard formatter.

uvicorn's ``AccessFormatter`` copies each record and looks up the status's phrase: 53 µs a
line against 21 µs (measured), and the access log was 7 % of the API's CPU in
benchmarks.transitions. A line reads ``2026-12-07 08:00:00,123 INFO 127.0.0.1:51234 - "POST
/api/v1/dossiers HTTP/1.1" 201`` (uvicorn's had no time)."""

from __future__ import annotations

import copy
from typing import Any

import uvicorn.config

ACCESS_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def uvicorn_log_config() -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["access"] = {"format": ACCESS_FORMAT}
    return config
