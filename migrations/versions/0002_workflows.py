"""workflows: outbox claims, deadline notices, notification log, agency answers

Revision ID: 0002_workflows
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0002_workflows"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=96), nullable=True)
        )
        batch_op.add_column(
            sa.Column("lease_until", storage.models.AwareDateTime(timezone=True), nullable=True)
        )

    op.create_table(
        "deadline_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dossier_id", sa.Integer(), nullable=False),
        sa.Column("step", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("threshold", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("unit_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("due_at", storage.models.AwareDateTime(timezone=True), nullable=True),
        sa.Column("flag", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_at", storage.models.AwareDateTime(timezone=True), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossier.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dossier_id", "step", "threshold"),
    )
    with op.batch_alter_table("deadline_notice", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deadline_notice_dossier_id"), ["dossier_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deadline_notice_unit_code"), ["unit_code"], unique=False
        )

    op.create_table(
        "notification_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("dossier_id", sa.Integer(), nullable=True),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("recipient", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("template", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sent_at", storage.models.AwareDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("outbox_id", "channel", "recipient"),
    )
    with op.batch_alter_table("notification_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_log_outbox_id"), ["outbox_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notification_log_dossier_id"), ["dossier_id"], unique=False
        )

    op.create_table(
        "agency_answer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("answer_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("dossier_code", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("received_at", storage.models.AwareDateTime(timezone=True), nullable=False),
        sa.Column("applied_at", storage.models.AwareDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("unit_code", "answer_id"),
    )
    with op.batch_alter_table("agency_answer", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_agency_answer_dossier_code"), ["dossier_code"], unique=False
        )


def downgrade() -> None:
    op.drop_table("agency_answer")
    op.drop_table("notification_log")
    op.drop_table("deadline_notice")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("lease_until")
        batch_op.drop_column("claimed_by")
