"""search: SQLite FTS5 over the OCR text and the applicant names; folded text on both

Revision ID: 0004_search_fts
Revises: 0003_workflows_text

SQLite only (PostgreSQL searches with its own full-text functions, no schema change):
``document_text_fts`` indexes ``document_text.text_folded`` and ``dossier_fts`` indexes
``dossier.applicant_name``, both external-content FTS5 tables (nothing stored twice) kept in
step by triggers, tokenizer ``unicode61 remove_diacritics 2``. On both dialects
``document_text.text_folded`` is rewritten as ``services.search.fold`` of the text (case and
diacritics removed, đ → d), what the search compares.

Note: a later SQLite batch migration that recreates ``dossier`` or ``document_text`` (move and
copy) drops these triggers with the old table; it must create them again (``TRIGGERS``).
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_search_fts"
down_revision: str | Sequence[str] | None = "0003_workflows_text"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2'"
TABLES = [
    "CREATE VIRTUAL TABLE document_text_fts USING fts5(text_folded, content = 'document_text', "
    f"content_rowid = 'id', {TOKENIZE})",
    "CREATE VIRTUAL TABLE dossier_fts USING fts5(applicant_name, content = 'dossier', "
    f"content_rowid = 'id', {TOKENIZE})",
]
TRIGGERS = [
    """CREATE TRIGGER document_text_fts_ai AFTER INSERT ON document_text BEGIN
  INSERT INTO document_text_fts(rowid, text_folded) VALUES (new.id, new.text_folded);
END""",
    """CREATE TRIGGER document_text_fts_ad AFTER DELETE ON document_text BEGIN
  INSERT INTO document_text_fts(document_text_fts, rowid, text_folded)
  VALUES ('delete', old.id, old.text_folded);
END""",
    """CREATE TRIGGER document_text_fts_au AFTER UPDATE OF text_folded ON document_text BEGIN
  INSERT INTO document_text_fts(document_text_fts, rowid, text_folded)
  VALUES ('delete', old.id, old.text_folded);
  INSERT INTO document_text_fts(rowid, text_folded) VALUES (new.id, new.text_folded);
END""",
    """CREATE TRIGGER dossier_fts_ai AFTER INSERT ON dossier BEGIN
  INSERT INTO dossier_fts(rowid, applicant_name) VALUES (new.id, new.applicant_name);
END""",
    """CREATE TRIGGER dossier_fts_ad AFTER DELETE ON dossier BEGIN
  INSERT INTO dossier_fts(dossier_fts, rowid, applicant_name)
  VALUES ('delete', old.id, old.applicant_name);
END""",
    """CREATE TRIGGER dossier_fts_au AFTER UPDATE OF applicant_name ON dossier BEGIN
  INSERT INTO dossier_fts(dossier_fts, rowid, applicant_name)
  VALUES ('delete', old.id, old.applicant_name);
  INSERT INTO dossier_fts(rowid, applicant_name) VALUES (new.id, new.applicant_name);
END""",
]


def fold(value: str) -> str:
    """``services.search.fold`` as of this revision (a migration does not follow later code)."""
    out = []
    for ch in value:
        if ch in "đĐ":
            out.append("d")
            continue
        decomposed = unicodedata.normalize("NFD", ch)
        out.append("".join(c for c in decomposed if not unicodedata.combining(c)).casefold())
    return "".join(out)


def _refold() -> None:
    """``text_folded`` = ``fold(text)`` for the rows already there."""
    bind = op.get_bind()
    texts = sa.table("document_text", sa.column("id"), sa.column("text"), sa.column("text_folded"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(texts.c.id, texts.c.text).where(texts.c.id > last).order_by(texts.c.id)
            .limit(500)
        ).all()  # fmt: skip
        if not rows:
            return
        for row in rows:
            bind.execute(
                texts.update().where(texts.c.id == row.id).values(text_folded=fold(row.text))
            )
        last = rows[-1].id


def upgrade() -> None:
    _refold()
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in [*TABLES, *TRIGGERS]:
        op.execute(statement)
    op.execute("INSERT INTO document_text_fts(document_text_fts) VALUES ('rebuild')")
    op.execute("INSERT INTO dossier_fts(dossier_fts) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("document_text_fts", "dossier_fts"):
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {name}_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {name}")
    bind = op.get_bind()
    texts = sa.table("document_text", sa.column("text"), sa.column("text_folded"))
    bind.execute(texts.update().values(text_folded=sa.func.lower(texts.c.text)))
