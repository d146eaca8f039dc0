"""workflows: text extracted by the digitization pipeline

Revision ID: 0003_workflows_text
Revises: 0002_workflows (after 0002_documents: the document table)
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0003_workflows_text"
down_revision: str | Sequence[str] | None = "0002_workflows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0002_documents"


def upgrade() -> None:
    op.create_table(
        "document_text",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("dossier_id", sa.Integer(), nullable=False),
        sa.Column("checksum_ok", sa.Boolean(), nullable=False),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("preview_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("text_folded", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("processed_at", storage.models.AwareDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["document.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("document_id"),
    )
    with op.batch_alter_table("document_text", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_document_text_dossier_id"), ["dossier_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("document_text")
