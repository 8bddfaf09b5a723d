"""Gateway fleet state: last status per gateway, device status (battery, last error), the
append-only gateway event log (unique event key: a redelivered event is stored once), and
pairing windows opened through the API.

Revision ID: 0006_fleet
Revises: 0005_care_model
Create Date: 2026-12-02 15:50:10.631262
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Timestamps are UTC with offset; SQLite stores them as naive UTC text (see
# registry.models.UtcDateTime, which does the conversion on both backends).
_TIMESTAMP = sa.DateTime(timezone=True)

revision: str = '0006_fleet'
down_revision: str | None = '0005_care_model'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('device_status',
    sa.Column('device_id', sa.String(length=191), nullable=False),
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=True),
    sa.Column('last_contact', _TIMESTAMP, nullable=True),
    sa.Column('battery_percent', sa.Integer(), nullable=True),
    sa.Column('battery_low_at', _TIMESTAMP, nullable=True),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('last_error_at', _TIMESTAMP, nullable=True),
    sa.Column('readings_not_stored', sa.Integer(), nullable=False),
    sa.Column('readings_lost', sa.Integer(), nullable=False),
    sa.Column('updated_at', _TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], name=op.f('fk_device_status_gateway_id_gateways')),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_device_status'))
    )
    with op.batch_alter_table('device_status', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_status_gateway_id'), ['gateway_id'], unique=False)

    op.create_table('gateway_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_key', sa.String(length=64), nullable=False),
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('at', _TIMESTAMP, nullable=False),
    sa.Column('received_at', _TIMESTAMP, nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('device_id', sa.String(length=191), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], name=op.f('fk_gateway_events_gateway_id_gateways')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_events')),
    sa.UniqueConstraint('event_key', name=op.f('uq_gateway_events_event_key'))
    )
    with op.batch_alter_table('gateway_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gateway_events_device_id'), ['device_id'], unique=False)
        batch_op.create_index('ix_gateway_events_gateway_id_at', ['gateway_id', 'at'], unique=False)

    op.create_table('gateway_status',
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('since', _TIMESTAMP, nullable=False),
    sa.Column('since_exact', sa.Boolean(), nullable=False),
    sa.Column('last_seen_at', _TIMESTAMP, nullable=True),
    sa.Column('status_at', _TIMESTAMP, nullable=True),
    sa.Column('queue_depth', sa.Integer(), nullable=True),
    sa.Column('oldest_unacked_age_seconds', sa.Float(), nullable=True),
    sa.Column('outbox_bytes', sa.BigInteger(), nullable=True),
    sa.Column('outbox_quota_bytes', sa.BigInteger(), nullable=True),
    sa.Column('over_quota', sa.Boolean(), nullable=False),
    sa.Column('software_version', sa.String(length=64), nullable=True),
    sa.Column('updated_at', _TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], name=op.f('fk_gateway_status_gateway_id_gateways')),
    sa.PrimaryKeyConstraint('gateway_id', name=op.f('pk_gateway_status'))
    )
    op.create_table('pairing_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('requested_by', sa.String(length=128), nullable=False),
    sa.Column('requested_at', _TIMESTAMP, nullable=False),
    sa.Column('window_seconds', sa.Integer(), nullable=False),
    sa.Column('expires_at', _TIMESTAMP, nullable=False),
    sa.Column('profile', sa.String(length=128), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('device_id', sa.String(length=191), nullable=True),
    sa.Column('outcome', sa.String(length=200), nullable=True),
    sa.Column('resolved_at', _TIMESTAMP, nullable=True),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], name=op.f('fk_pairing_requests_gateway_id_gateways')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_pairing_requests_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pairing_requests'))
    )
    with op.batch_alter_table('pairing_requests', schema=None) as batch_op:
        batch_op.create_index('ix_pairing_requests_gateway_id_state', ['gateway_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_pairing_requests_patient_id'), ['patient_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('pairing_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pairing_requests_patient_id'))
        batch_op.drop_index('ix_pairing_requests_gateway_id_state')

    op.drop_table('pairing_requests')
    op.drop_table('gateway_status')
    with op.batch_alter_table('gateway_events', schema=None) as batch_op:
        batch_op.drop_index('ix_gateway_events_gateway_id_at')
        batch_op.drop_index(batch_op.f('ix_gateway_events_device_id'))

    op.drop_table('gateway_events')
    with op.batch_alter_table('device_status', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_status_gateway_id'))

    op.drop_table('device_status')
