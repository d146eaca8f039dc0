"""feedback and fees: feedback items and events, dossier charges, payments, callbacks seen

Revision ID: 0002_feedback
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0002_feedback"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('feedback_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('external_ref', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('author_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('author_contact', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('author_consent', sa.Boolean(), nullable=False),
    sa.Column('procedure_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('attachments', sa.JSON(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('agency_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('competent_agency', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('assignee', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('forwarded_to', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('rejection_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('received_at', storage.models.AwareDateTime(timezone=True), nullable=False),
    sa.Column('due_at', storage.models.AwareDateTime(timezone=True), nullable=False),
    sa.Column('step_entered_at', storage.models.AwareDateTime(timezone=True), nullable=True),
    sa.Column('step_due_at', storage.models.AwareDateTime(timezone=True), nullable=True),
    sa.Column('handled_at', storage.models.AwareDateTime(timezone=True), nullable=True),
    sa.Column('timeliness', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('finished_at', storage.models.AwareDateTime(timezone=True), nullable=True),
    sa.Column('answer', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('answer_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('approved_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('published_at', storage.models.AwareDateTime(timezone=True), nullable=True),
    sa.Column('satisfaction', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('rated_at', storage.models.AwareDateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('external_ref')
    )
    op.create_index('ix_feedback_agency_status', 'feedback_item', ['agency_code', 'status'], unique=False)
    op.create_index(op.f('ix_feedback_item_agency_code'), 'feedback_item', ['agency_code'], unique=False)
    op.create_index(op.f('ix_feedback_item_code'), 'feedback_item', ['code'], unique=True)
    op.create_index(op.f('ix_feedback_item_handled_at'), 'feedback_item', ['handled_at'], unique=False)
    op.create_index(op.f('ix_feedback_item_procedure_code'), 'feedback_item', ['procedure_code'], unique=False)
    op.create_index(op.f('ix_feedback_item_status'), 'feedback_item', ['status'], unique=False)
    op.create_table('payment_callback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('gateway', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('order_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('body', sa.JSON(), nullable=True),
    sa.Column('received_at', storage.models.AwareDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('gateway', 'event_id')
    )
    op.create_index(op.f('ix_payment_callback_order_ref'), 'payment_callback', ['order_ref'], unique=False)
    op.create_table('dossier_charge',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dossier_id', sa.Integer(), nullable=False),
    sa.Column('dossier_code', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('procedure_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('agency_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=True),
    sa.Column('exemption', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('wait', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('paid_at', storage.models.AwareDateTime(timezone=True), nullable=True),
    sa.Column('assessed_at', storage.models.AwareDateTime(timezone=True), nullable=False),
    sa.Column('assessed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['dossier_id'], ['dossier.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_dossier_charge_agency_code'), 'dossier_charge', ['agency_code'], unique=False)
    op.create_index(op.f('ix_dossier_charge_dossier_code'), 'dossier_charge', ['dossier_code'], unique=False)
    op.create_index(op.f('ix_dossier_charge_dossier_id'), 'dossier_charge', ['dossier_id'], unique=True)
    op.create_table('feedback_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('feedback_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('from_state', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('to_state', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('at', storage.models.AwareDateTime(timezone=True), nullable=False),
    sa.Column('actor_username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('actor_role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('actor_unit', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('step_due_at', storage.models.AwareDateTime(timezone=True), nullable=True),
    sa.Column('step_timeliness', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['feedback_id'], ['feedback_item.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('feedback_id', 'seq')
    )
    op.create_index(op.f('ix_feedback_event_feedback_id'), 'feedback_event', ['feedback_id'], unique=False)
    op.create_table('payment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('charge_id', sa.Integer(), nullable=False),
    sa.Column('dossier_code', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('receipt_number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('gateway_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('gateway_txn', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('payment_url', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('qr_payload', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('created_at', storage.models.AwareDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('paid_at', storage.models.AwareDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['charge_id'], ['dossier_charge.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('receipt_number')
    )
    op.create_index(op.f('ix_payment_charge_id'), 'payment', ['charge_id'], unique=False)
    op.create_index(op.f('ix_payment_dossier_code'), 'payment', ['dossier_code'], unique=False)
    op.create_index(op.f('ix_payment_order_ref'), 'payment', ['order_ref'], unique=True)


def downgrade() -> None:
    op.drop_table("payment")
    op.drop_table("feedback_event")
    op.drop_table("dossier_charge")
    op.drop_table("payment_callback")
    op.drop_table("feedback_item")
