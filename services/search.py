"""Dossier search for officers: by dossier code, applicant name and the text read from the
digitized papers (OCR, ``document_text``), scoped like every other list (``services.access``).

Matching is diacritic-insensitive both ways — an officer types "Nguyễn Thị Hương", a bad scan
read "Nguyen Thi Huong", or the reverse — and đ matches d. Dossiers whose text carries the
words exactly as typed (diacritics included) rank first.

* SQLite: FTS5 (migration ``0004_search_fts``): ``document_text_fts`` over
  ``document_text.text_folded`` and ``dossier_fts`` over ``dossier.applicant_name``, both
  external-content tables kept in step by triggers, tokenizer ``unicode61 remove_diacritics 2``
  (which keeps đ apart from d: the name query asks for both spellings).
* PostgreSQL: full-text search, ``to_tsvector('simple', …) @@ plainto_tsquery('simple', …)``
  over the folded text, and over the applicant name folded in SQL (``translate``).

A dossier matches when one of its sources holds every word: its code starts with the query,
its applicant's name has all the words, or the text of one of its live documents has them.
``text_folded`` is :func:`fold` of the OCR text (written by ``workflows.digitization``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import product
from typing import Any, Literal

from sqlalchemy import column, func, literal_column, table, text
from sqlmodel import Session, select

from services.access import can_see
from services.context import Context
from services.worklist import scope_filter
from states.lifecycle import Actor
from storage.models import Dossier
from storage.models_documents import Document
from storage.models_workflows import DocumentText

Source = Literal["code", "name", "text"]
SNIPPET_CHARS = 90  # on each side of the first match
WORD = re.compile(r"\w+")
MAX_QUERY_WORDS = 12


def _fold_char(ch: str) -> str:
    if ch in "đĐ":
        return "d"
    decomposed = unicodedata.normalize("NFD", ch)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def fold(value: str) -> str:
    """Case- and diacritic-free: ``"Đông Kinh, HƯƠNG"`` → ``"dong kinh, huong"``."""
    return "".join(_fold_char(ch) for ch in value)


def query_words(query: str) -> list[str]:
    """The words of a query, folded, in order, without repeats (at most 12)."""
    seen: list[str] = []
    for word in WORD.findall(fold(query)):
        if word not in seen:
            seen.append(word)
    return seen[:MAX_QUERY_WORDS]


# PostgreSQL: the same folding in SQL, for the Vietnamese (and Latin-1) letters
def _translate_map() -> tuple[str, str, str]:
    letters = [chr(c) for c in (*range(0xC0, 0x180), 0x1A0, 0x1A1, 0x1AF, 0x1B0)]
    letters += [chr(c) for c in range(0x1EA0, 0x1EFA)]
    source, target = [], []
    for ch in letters:
        folded = _fold_char(ch)
        if len(folded) == 1 and folded.isascii() and folded.isalpha() and folded != ch:
            source.append(ch)
            target.append(folded)
    marks = "".join(chr(c) for c in range(0x300, 0x370))  # combining marks: removed
    return "".join(source), "".join(target), marks


_PG_FROM, _PG_TO, _PG_MARKS = _translate_map()


def pg_fold(expression: Any) -> Any:
    """SQL for :func:`fold` on PostgreSQL (``translate`` drops the marks without a target)."""
    return func.lower(func.translate(expression, _PG_FROM + _PG_MARKS, _PG_TO))


@dataclass(frozen=True)
class SearchHit:
    code: str
    applicant_name: str
    procedure_code: str
    status: str
    competent_agency: str
    source: Source
    snippet: list[tuple[str, bool]]  # text segments, highlighted or not
    exact: int  # query words found as typed (diacritics included)


def _fts_string(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _name_alternatives(word: str) -> str:
    """FTS5 query for one folded word against ``unicode61`` (which keeps đ): each d may be đ."""
    positions = [i for i, ch in enumerate(word) if ch == "d"][:3]
    variants = []
    for choice in product("dđ", repeat=len(positions)):
        letters = list(word)
        for position, letter in zip(positions, choice, strict=True):
            letters[position] = letter
        variants.append(_fts_string("".join(letters)))
    return variants[0] if len(variants) == 1 else "(" + " OR ".join(variants) + ")"


def _looks_like_code(query: str) -> bool:
    """One token of ASCII letters, digits, dots and dashes, with a digit (``H37-250303``)."""
    stripped = query.strip()
    return (
        bool(stripped)
        and all(ch.isascii() and (ch.isalnum() or ch in ".-") for ch in stripped)
        and any(ch.isdigit() for ch in stripped)
    )


def _live(documents: Any) -> Any:
    return documents.c.deleted_at.is_(None)


def search_dossiers(
    ctx: Context, actor: Actor | None, query: str, *, limit: int = 50
) -> list[SearchHit]:
    """Dossiers the actor may see (``None``: no scoping, for internal use) matching ``query``,
    best first: code matches, then the most words found exactly as typed, then the text rank,
    then the newest."""
    words = query_words(query)
    if not words:
        return []
    dossiers = Dossier.__table__  # type: ignore[attr-defined]
    texts = DocumentText.__table__  # type: ignore[attr-defined]
    documents = Document.__table__  # type: ignore[attr-defined]
    scope = scope_filter(ctx, actor) if actor is not None else None
    scoped = [scope] if scope is not None else []
    cap = max(limit * 4, 50)
    postgres = ctx.engine.dialect.name == "postgresql"
    found: dict[int, tuple[Source, int | None, float]] = {}  # dossier id → source, text id, rank

    def keep(dossier_id: int, source: Source, text_id: int | None, rank: float) -> None:
        if dossier_id not in found:
            found[dossier_id] = (source, text_id, rank)

    with ctx.engine.connect() as conn:
        if _looks_like_code(query):
            prefix = query.strip().upper()
            if postgres:
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                by_code = dossiers.c.code.like(escaped + "%", escape="\\")
            else:  # BINARY collation: a range the unique index serves
                by_code = (dossiers.c.code >= prefix) & (dossiers.c.code < prefix + "\U0010ffff")
            rows = conn.execute(
                select(dossiers.c.id).where(by_code, *scoped).order_by(dossiers.c.code).limit(cap)
            )
            for row in rows:
                keep(row.id, "code", None, 0.0)
        if postgres:
            name_match = func.to_tsvector("simple", pg_fold(dossiers.c.applicant_name)).op("@@")(
                func.plainto_tsquery("simple", " ".join(words))
            )
            name_rows = conn.execute(
                select(dossiers.c.id)
                .where(name_match, *scoped)
                .order_by(dossiers.c.id.desc())
                .limit(cap)
            )
        else:
            fts = table("dossier_fts", column("rowid"))
            name_rows = conn.execute(
                select(dossiers.c.id)
                .select_from(fts.join(dossiers, dossiers.c.id == fts.c.rowid))
                .where(
                    text("dossier_fts MATCH :names").bindparams(
                        names=" AND ".join(_name_alternatives(w) for w in words)
                    ),
                    *scoped,
                )
                .order_by(literal_column("dossier_fts.rank"))
                .limit(cap)
            )
        for row in name_rows:
            keep(row.id, "name", None, 0.0)
        joined = texts.join(documents, documents.c.id == texts.c.document_id).join(
            dossiers, dossiers.c.id == texts.c.dossier_id
        )
        if postgres:
            vector = func.to_tsvector("simple", texts.c.text_folded)
            tsquery = func.plainto_tsquery("simple", " ".join(words))
            rank = func.ts_rank(vector, tsquery)
            text_rows = conn.execute(
                select(texts.c.dossier_id, texts.c.id, rank.label("rank"))
                .select_from(joined)
                .where(vector.op("@@")(tsquery), _live(documents), *scoped)
                .order_by(rank.desc(), texts.c.id.desc())
                .limit(cap)
            )
            ranked = [(r.dossier_id, r.id, -float(r.rank)) for r in text_rows]
        else:
            fts = table("document_text_fts", column("rowid"))
            fts_rank: Any = literal_column("document_text_fts.rank")
            text_rows = conn.execute(
                select(texts.c.dossier_id, texts.c.id, fts_rank.label("rank"))
                .select_from(fts.join(joined, texts.c.id == fts.c.rowid))
                .where(
                    text("document_text_fts MATCH :words").bindparams(
                        words=" AND ".join(_fts_string(w) for w in words)
                    ),
                    _live(documents),
                    *scoped,
                )
                .order_by(fts_rank)
                .limit(cap)
            )
            ranked = [(r.dossier_id, r.id, float(r.rank)) for r in text_rows]
        for dossier_id, text_id, score in ranked:
            keep(dossier_id, "text", text_id, score)
        if not found:
            return []
        with Session(bind=conn) as session:
            loaded = list(session.exec(select(Dossier).where(dossiers.c.id.in_(sorted(found)))))
        text_ids = [t for _, t, _ in found.values() if t is not None]
        bodies: dict[int, str] = {}
        if text_ids:
            chosen = select(texts.c.id, texts.c.text).where(texts.c.id.in_(text_ids))
            bodies = {r.id: r.text for r in conn.execute(chosen)}
    typed = [w.casefold() for w in WORD.findall(query)]
    hits: list[tuple[tuple[Any, ...], SearchHit]] = []
    prefix = query.strip().upper()
    for dossier in loaded:
        if actor is not None and not can_see(ctx.catalog, actor, dossier):
            continue
        assert dossier.id is not None
        source, text_id, score = found[dossier.id]
        if source == "code":
            shown = dossier.code
            pieces = [(shown[: len(prefix)], True), (shown[len(prefix) :], False)]
        else:
            shown = dossier.applicant_name if source == "name" else bodies.get(text_id or 0, "")
            pieces = snippet(shown, words)
        exact = sum(1 for w in typed if w in shown.casefold())
        hit = SearchHit(
            code=dossier.code,
            applicant_name=dossier.applicant_name,
            procedure_code=dossier.procedure_code,
            status=dossier.status,
            competent_agency=dossier.competent_agency,
            source=source,
            snippet=pieces,
            exact=exact,
        )
        order = (source != "code", -exact, score, -(dossier.id or 0))
        hits.append((order, hit))
    hits.sort(key=lambda pair: pair[0])
    return [hit for _, hit in hits[:limit]]


def snippet(value: str, words: list[str], width: int = SNIPPET_CHARS) -> list[tuple[str, bool]]:
    """The part of ``value`` around the first matching word, as (segment, highlighted) pairs;
    a word matches whatever its diacritics (folded on both sides, whole words)."""
    if not value:
        return []
    folded: list[str] = []
    origin: list[int] = []  # folded character → index in value
    for index, ch in enumerate(value):
        for piece in _fold_char(ch):
            folded.append(piece)
            origin.append(index)
    text_folded = "".join(folded)
    marks: list[tuple[int, int]] = []
    for word in words:
        for match in re.finditer(rf"(?<!\w){re.escape(word)}(?!\w)", text_folded):
            first, last = origin[match.start()], origin[match.end() - 1] + 1
            while last < len(value) and unicodedata.combining(value[last]):
                last += 1  # decomposed marks of the last letter
            marks.append((first, last))
    marks.sort()
    if not marks:
        return [(_squash(value[: width * 2]) + ("…" if len(value) > width * 2 else ""), False)]
    start = max(0, marks[0][0] - width)
    end = min(len(value), marks[0][1] + width)
    pieces: list[tuple[str, bool]] = [("…", False)] if start > 0 else []
    position = start
    for first, last in marks:
        if first < position or last > end:
            continue
        if first > position:
            pieces.append((_squash(value[position:first]), False))
        pieces.append((value[first:last], True))
        position = last
    if position < end:
        pieces.append((_squash(value[position:end]), False))
    if end < len(value):
        pieces.append(("…", False))
    return pieces


def _squash(part: str) -> str:
    return re.sub(r"\s+", " ", part)


__all__ = ["SearchHit", "fold", "pg_fold", "query_words", "search_dossiers", "snippet"]
