"""metrics: daily snapshots and dossier indexes for the dashboard

Revision ID: 0002_metrics
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_metrics"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_WHERE = "received_at IS NOT NULL AND result_ready_at IS NULL AND withdrawn_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "metrics_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("receiving_unit", sa.String(length=64), nullable=False),
        sa.Column("competent_agency", sa.String(length=64), nullable=False),
        sa.Column("procedure_code", sa.String(length=32), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("field", sa.String(length=300), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("finished", sa.Integer(), nullable=False),
        sa.Column("early", sa.Integer(), nullable=False),
        sa.Column("on_time", sa.Integer(), nullable=False),
        sa.Column("late", sa.Integer(), nullable=False),
        sa.Column("withdrawn", sa.Integer(), nullable=False),
        sa.Column("in_progress", sa.Integer(), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day",
            "receiving_unit",
            "competent_agency",
            "procedure_code",
            "level",
            "channel",
            "field",
        ),
    )
    op.create_table(
        "metrics_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_index("ix_dossier_received_at", "dossier", ["received_at"])
    op.create_index("ix_dossier_withdrawn_at", "dossier", ["withdrawn_at"])
    op.create_index(
        "ix_dossier_open_due",
        "dossier",
        ["due_at"],
        postgresql_where=sa.text(OPEN_WHERE),
        sqlite_where=sa.text(OPEN_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_dossier_open_due", table_name="dossier")
    op.drop_index("ix_dossier_withdrawn_at", table_name="dossier")
    op.drop_index("ix_dossier_received_at", table_name="dossier")
    op.drop_table("metrics_day")
    op.drop_table("metrics_daily")
