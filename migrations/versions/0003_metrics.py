"""metrics: snapshots hold cumulated flows; indexes for the 766 progress indicator

The snapshot tables are a cache of the dossier rows (recomputed on demand), so they are dropped
and recreated rather than altered.

Revision ID: 0003_metrics
Revises: 0002_metrics
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_metrics"
down_revision: str | Sequence[str] | None = "0002_metrics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIMS = ("receiving_unit", "competent_agency", "procedure_code", "level", "channel", "field")
LENGTHS = {"receiving_unit": 64, "competent_agency": 64, "procedure_code": 32, "level": 16,
           "channel": 16, "field": 300}  # fmt: skip


def _daily(flows: Sequence[str]) -> None:
    op.create_table(
        "metrics_daily",
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.String(length=LENGTHS[name]), nullable=False) for name in DIMS),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in flows),
        sa.Column("in_progress", sa.Integer(), nullable=False),
        sa.Column("overdue", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", *DIMS),
    )


def upgrade() -> None:
    op.drop_table("metrics_daily")
    op.execute("DELETE FROM metrics_day")
    _daily(["cum_received", "cum_finished", "cum_early", "cum_on_time", "cum_late",
            "cum_withdrawn"])  # fmt: skip
    op.create_index("ix_dossier_refused_at", "dossier", ["refused_at"])
    op.create_index(
        "ix_dossier_multi_supplement",
        "dossier",
        ["competent_agency"],
        postgresql_where=sa.text("supplement_count > 1"),
        sqlite_where=sa.text("supplement_count > 1"),
    )


def downgrade() -> None:
    op.drop_index("ix_dossier_multi_supplement", table_name="dossier")
    op.drop_index("ix_dossier_refused_at", table_name="dossier")
    op.drop_table("metrics_daily")
    op.execute("DELETE FROM metrics_day")
    _daily(["received", "finished", "early", "on_time", "late", "withdrawn"])
