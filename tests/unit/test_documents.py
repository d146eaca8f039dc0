"""Documents without I/O: file names, type from content, keys, the verifying reader, the body pipe,
per-component states from rows."""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.routes.documents import BodyPipe
from services.catalog import default_catalog
from services.clock import TZ
from services.context import Context
from services.documents import (
    BadFileName,
    DocumentTooLarge,
    UnsupportedDocumentType,
    _VerifyingReader,
    check_file_name,
    detect_type,
    object_key,
    states_of,
)
from storage.models import Dossier
from storage.models_documents import DigitizationExemption, Document
from storage.objects import check_key


@pytest.mark.parametrize(
    "name",
    ["../x.pdf", "a/../../b.pdf", "..\\..\\win.pdf", "/etc/passwd", "a/b.pdf", "x\x00.pdf",
     "ok\n.pdf", "..", ".", "~root.pdf", "a" * 256],
)  # fmt: skip
def test_path_like_file_names_are_refused(name: str) -> None:
    with pytest.raises(BadFileName) as raised:
        check_file_name(name)
    assert "../" in raised.value.message_vi and "../" in raised.value.message_en


@pytest.mark.parametrize("name", ["scan 01.pdf", "Giấy khai sinh (bản sao).jpg", "a.b.c.tif"])
def test_ordinary_file_names_pass(name: str) -> None:
    assert check_file_name(name) == name


@given(st.text(min_size=1, max_size=300))
def test_an_accepted_file_name_never_leaves_its_folder(name: str) -> None:
    try:
        accepted = check_file_name(name)
    except BadFileName:
        return
    assert accepted is not None
    assert "/" not in accepted and "\\" not in accepted and ".." not in accepted


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"%PDF-1.7\n", "application/pdf"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
    ],
)
def test_allowed_types_are_read_from_the_content(head: bytes, mime: str) -> None:
    assert detect_type(head + b"\x00" * 300) == mime


@pytest.mark.parametrize(
    "head",
    [b"\x7fELF\x02\x01\x01", b"MZ\x90\x00", b"PK\x03\x04", b"<html><body>", b"#!/bin/sh\n", b""],
)
def test_anything_else_is_refused(head: bytes) -> None:
    with pytest.raises(UnsupportedDocumentType):
        detect_type(head + b"\x00" * 300)


def test_keys_come_from_code_component_and_hash() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    key = object_key("000.00.01.H37-250303-0001", "applicant_id", digest)
    assert key == f"000.00.01.H37-250303-0001/applicant_id/{digest}"
    assert check_key(key) == key


def test_verifying_reader_hashes_counts_and_stops_past_the_limit() -> None:
    data = bytes(range(256)) * 100
    reader = _VerifyingReader(data[:10], io.BytesIO(data[10:]), limit=len(data), limit_what="file")
    out = b"".join(iter(lambda: reader.read(999), b""))
    assert out == data and reader.size == len(data)
    assert reader.sha.hexdigest() == hashlib.sha256(data).hexdigest()
    small = _VerifyingReader(b"", io.BytesIO(data), limit=1000, limit_what="dossier")
    with pytest.raises(DocumentTooLarge) as raised:
        while small.read(300):
            pass
    assert raised.value.details["limit"] == "dossier"


def test_body_pipe_hands_bytes_over_in_order_and_raises_the_producer_error() -> None:
    pipe = BodyPipe(blocks=2)
    blocks = [bytes([i]) * 1000 for i in range(20)]
    got: list[bytes] = []

    def consume() -> None:
        while chunk := pipe.read(1500):
            got.append(chunk)

    async def produce() -> None:
        for block in blocks:
            assert await pipe.put(block)
        await pipe.put(None)

    thread = threading.Thread(target=consume)
    thread.start()
    asyncio.run(produce())
    thread.join(5)
    assert b"".join(got) == b"".join(blocks)
    assert all(len(c) <= 1500 for c in got)

    failing = BodyPipe()

    async def fail() -> None:
        await failing.put(b"abc")
        await failing.put(ConnectionResetError("gone"))

    asyncio.run(fail())
    assert failing.read(3) == b"abc"
    with pytest.raises(ConnectionResetError):
        failing.read(3)


def test_body_pipe_writer_stops_when_the_reader_closed() -> None:
    pipe = BodyPipe(blocks=1)
    pipe.close()
    assert asyncio.run(pipe.put(b"x")) is False


def _dossier(channel: str = "counter", decision: str | None = None) -> Dossier:
    return Dossier(
        id=1, code="C-1", procedure_code="MOJ.lltp", procedure_version=1, rule_set="2018",
        receiving_unit="000.00.01.H37", competent_agency="000.00.02.H37", level="province",
        channel=channel, applicant_name="A", status="intake", submitted_at=datetime.now(TZ),
        components=[{"id": "request_form"}, {"id": "applicant_id"}], decision=decision,
    )  # fmt: skip


def _doc(component: str, version: int, at: datetime, **extra: object) -> Document:
    return Document(
        id=version * 10, dossier_id=1, component=component, version=version, object_key="k",
        sha256="0" * 64, size=1, content_type="application/pdf", uploaded_by="u", uploaded_at=at,
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def test_states_follow_precedence_and_time() -> None:
    ctx = Context(engine=None)  # type: ignore[arg-type]  # states_of reads only the catalog
    ctx.catalog = default_catalog()
    t0 = datetime(2025, 3, 3, 9, 0, tzinfo=TZ)
    docs = [
        _doc("request_form", 1, t0),
        _doc("request_form", 2, t0 + timedelta(hours=1), deleted_at=t0 + timedelta(hours=2)),
        _doc("applicant_id", 1, t0 + timedelta(days=1), reused_from_id=99),
    ]
    exemption = DigitizationExemption(
        dossier_id=1, component="applicant_id", reason="shared_data", recorded_by="u",
        recorded_at=t0,
    )  # fmt: skip
    now = {s.component: (s.status, s.version) for s in states_of(ctx, _dossier(), docs, [])}
    assert now == {"request_form": ("digitized", 1), "applicant_id": ("reused", 1)}
    then = states_of(ctx, _dossier(), docs, [exemption], as_of=t0 + timedelta(minutes=90))
    assert {s.component: (s.status, s.version, s.exemption) for s in then} == {
        "request_form": ("digitized", 2, None),  # deleted only later
        "applicant_id": ("exempt", None, "shared_data"),
    }
    online = states_of(ctx, _dossier("online", decision="approved"), [], [])
    assert [(s.component, s.status) for s in online] == [
        ("request_form", "exempt"), ("applicant_id", "exempt"), ("result", "not_digitized"),
    ]  # fmt: skip
