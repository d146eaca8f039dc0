"""assignments: kind and previous assignee of each assignment, revocable delegations

Revision ID: 0004_assignments
Revises: 0002_api (which created the ``assignment`` and ``delegation`` tables)
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0004_assignments"
down_revision: str | Sequence[str] | None = "0002_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("delegation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "created_by",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column("revoked_at", storage.models.AwareDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("revoked_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("revoke_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.create_index("ix_delegation_leader", ["leader"], unique=False)
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unit_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "kind",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="assign",
            )
        )
        batch_op.add_column(
            sa.Column(
                "previous_assignee", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
            )
        )
        batch_op.add_column(sa.Column("delegation_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_assignment_delegation_id_delegation", "delegation", ["delegation_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_constraint("fk_assignment_delegation_id_delegation", type_="foreignkey")
        batch_op.drop_column("delegation_id")
        batch_op.drop_column("previous_assignee")
        batch_op.drop_column("kind")
        batch_op.drop_column("unit_code")
    with op.batch_alter_table("delegation", schema=None) as batch_op:
        batch_op.drop_index("ix_delegation_leader")
        batch_op.drop_column("revoke_reason")
        batch_op.drop_column("revoked_by")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("created_by")
