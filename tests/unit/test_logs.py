"""api.logs: ``motcua serve``'s access lines carry the time, the client, the request line and the
status, written by the standard formatter instead of uvicorn's slower AccessFormatter."""

from __future__ import annotations

import logging
import re

from api.logs import uvicorn_log_config

LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO "
    r'127\.0\.0\.1:51234 - "POST /api/v1/dossiers HTTP/1\.1" 201'
)


def test_an_access_line_is_timestamped_and_complete() -> None:
    config = uvicorn_log_config()
    assert config["loggers"]["uvicorn.access"]["handlers"] == ["access"]
    assert config["handlers"]["access"]["formatter"] == "access"
    formatter = logging.Formatter(config["formatters"]["access"]["format"])
    # the record uvicorn's protocols log for each answered request
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:51234", "POST", "/api/v1/dossiers", "1.1", 201), None,
    )  # fmt: skip
    line = formatter.format(record)
    assert LINE.fullmatch(line), line
