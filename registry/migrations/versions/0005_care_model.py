"""Care model: staff accounts and roles, teams, contracts, duty rota, family consents, access
grants, login sessions (refresh tokens, SMS login links), patient profile (conditions,
contact, address, e-health card), monitoring consent, targets, status.

Revision ID: 0005_care_model
Revises: 0004_audit_chain
Create Date: 2026-12-02 04:39:58.671067
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Timestamps are UTC with offset; SQLite stores them as naive UTC text (see
# registry.models.UtcDateTime, which does the conversion on both backends).
_TIMESTAMP = sa.DateTime(timezone=True)

revision: str = '0005_care_model'
down_revision: str | None = '0004_audit_chain'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('care_teams',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('organisation', sa.String(length=200), nullable=False),
    sa.Column('created_at', _TIMESTAMP, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_teams')),
    sa.UniqueConstraint('code', name=op.f('uq_care_teams_code'))
    )
    op.create_table('care_contracts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('team_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('service_package', sa.String(length=64), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('end_reason', sa.String(length=200), nullable=True),
    sa.Column('signed_at', _TIMESTAMP, nullable=False),
    sa.CheckConstraint('ends_on IS NULL OR ends_on > starts_on', name=op.f('ck_care_contracts_valid_range')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_care_contracts_patient_id_patients')),
    sa.ForeignKeyConstraint(['team_id'], ['care_teams.id'], name=op.f('fk_care_contracts_team_id_care_teams')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_contracts'))
    )
    with op.batch_alter_table('care_contracts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_contracts_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_care_contracts_team_id_starts_on', ['team_id', 'starts_on'], unique=False)
        batch_op.create_index('uq_care_contracts_open_patient', ['patient_id'], unique=True, sqlite_where=sa.text('ends_on IS NULL'), postgresql_where=sa.text('ends_on IS NULL'))

    op.create_table('monitoring_consents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('granted_at', _TIMESTAMP, nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.Column('document_ref', sa.String(length=200), nullable=True),
    sa.Column('withdrawn_at', _TIMESTAMP, nullable=True),
    sa.Column('withdrawn_by', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_monitoring_consents_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_consents'))
    )
    with op.batch_alter_table('monitoring_consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitoring_consents_patient_id'), ['patient_id'], unique=False)

    op.create_table('patient_conditions',
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('condition', sa.String(length=32), nullable=False),
    sa.Column('recorded_at', _TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_patient_conditions_patient_id_patients')),
    sa.PrimaryKeyConstraint('patient_id', 'condition', name=op.f('pk_patient_conditions'))
    )
    op.create_table('patient_status_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('effective_from', _TIMESTAMP, nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_patient_status_changes_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_status_changes'))
    )
    with op.batch_alter_table('patient_status_changes', schema=None) as batch_op:
        batch_op.create_index('ix_patient_status_changes_patient_id_effective_from', ['patient_id', 'effective_from'], unique=False)

    op.create_table('patient_targets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('low', sa.Float(), nullable=True),
    sa.Column('high', sa.Float(), nullable=True),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('effective_from', _TIMESTAMP, nullable=False),
    sa.Column('set_by', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.CheckConstraint('low IS NOT NULL OR high IS NOT NULL', name=op.f('ck_patient_targets_has_bound')),
    sa.CheckConstraint('low IS NULL OR high IS NULL OR low < high', name=op.f('ck_patient_targets_ordered')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_patient_targets_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_targets'))
    )
    with op.batch_alter_table('patient_targets', schema=None) as batch_op:
        batch_op.create_index('ix_patient_targets_patient_id_metric_effective_from', ['patient_id', 'metric', 'effective_from'], unique=False)

    op.create_table('user_accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('totp_secret', sa.String(length=64), nullable=True),
    sa.Column('patient_id', sa.String(length=64), nullable=True),
    sa.Column('custodial', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', _TIMESTAMP, nullable=True),
    sa.Column('session_version', sa.Integer(), nullable=False),
    sa.Column('created_at', _TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_user_accounts_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_accounts')),
    sa.UniqueConstraint('patient_id', name=op.f('uq_user_accounts_patient_id')),
    sa.UniqueConstraint('username', name=op.f('uq_user_accounts_username'))
    )
    op.create_table('access_grants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('starts_at', _TIMESTAMP, nullable=False),
    sa.Column('ends_at', _TIMESTAMP, nullable=False),
    sa.Column('revoked_at', _TIMESTAMP, nullable=True),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_access_grants_valid_range')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_access_grants_patient_id_patients')),
    sa.ForeignKeyConstraint(['user_id'], ['user_accounts.id'], name=op.f('fk_access_grants_user_id_user_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_grants'))
    )
    with op.batch_alter_table('access_grants', schema=None) as batch_op:
        batch_op.create_index('ix_access_grants_user_id_patient_id', ['user_id', 'patient_id'], unique=False)

    op.create_table('duty_shifts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('team_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('doctor_user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('starts_at', _TIMESTAMP, nullable=False),
    sa.Column('ends_at', _TIMESTAMP, nullable=False),
    sa.Column('covers_user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_duty_shifts_valid_range')),
    sa.ForeignKeyConstraint(['covers_user_id'], ['user_accounts.id'], name=op.f('fk_duty_shifts_covers_user_id_user_accounts')),
    sa.ForeignKeyConstraint(['doctor_user_id'], ['user_accounts.id'], name=op.f('fk_duty_shifts_doctor_user_id_user_accounts')),
    sa.ForeignKeyConstraint(['team_id'], ['care_teams.id'], name=op.f('fk_duty_shifts_team_id_care_teams')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_duty_shifts'))
    )
    with op.batch_alter_table('duty_shifts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_duty_shifts_doctor_user_id'), ['doctor_user_id'], unique=False)
        batch_op.create_index('ix_duty_shifts_team_id_starts_at', ['team_id', 'starts_at'], unique=False)

    op.create_table('family_links',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('relationship', sa.String(length=32), nullable=False),
    sa.Column('created_at', _TIMESTAMP, nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_family_links_patient_id_patients')),
    sa.ForeignKeyConstraint(['user_id'], ['user_accounts.id'], name=op.f('fk_family_links_user_id_user_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_family_links'))
    )
    with op.batch_alter_table('family_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_family_links_user_id'), ['user_id'], unique=False)
        batch_op.create_index('uq_family_links_patient_id_user_id', ['patient_id', 'user_id'], unique=True)

    op.create_table('login_links',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('issued_at', _TIMESTAMP, nullable=False),
    sa.Column('expires_at', _TIMESTAMP, nullable=False),
    sa.Column('used_at', _TIMESTAMP, nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_accounts.id'], name=op.f('fk_login_links_user_id_user_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_links')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_login_links_token_hash'))
    )
    with op.batch_alter_table('login_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_links_user_id'), ['user_id'], unique=False)

    op.create_table('refresh_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('family', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('session_version', sa.Integer(), nullable=False),
    sa.Column('issued_at', _TIMESTAMP, nullable=False),
    sa.Column('expires_at', _TIMESTAMP, nullable=False),
    sa.Column('used_at', _TIMESTAMP, nullable=True),
    sa.Column('revoked_at', _TIMESTAMP, nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user_accounts.id'], name=op.f('fk_refresh_tokens_user_id_user_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_refresh_tokens_token_hash'))
    )
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_tokens_family'), ['family'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('team_memberships',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('team_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.String(length=16), nullable=False),
    sa.Column('valid_from', _TIMESTAMP, nullable=False),
    sa.Column('valid_to', _TIMESTAMP, nullable=True),
    sa.CheckConstraint('valid_to IS NULL OR valid_to > valid_from', name=op.f('ck_team_memberships_valid_range')),
    sa.ForeignKeyConstraint(['team_id'], ['care_teams.id'], name=op.f('fk_team_memberships_team_id_care_teams')),
    sa.ForeignKeyConstraint(['user_id'], ['user_accounts.id'], name=op.f('fk_team_memberships_user_id_user_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_team_memberships'))
    )
    with op.batch_alter_table('team_memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_team_memberships_team_id'), ['team_id'], unique=False)
        batch_op.create_index('ix_team_memberships_user_id_team_id', ['user_id', 'team_id'], unique=False)

    op.create_table('user_roles',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user_accounts.id'], name=op.f('fk_user_roles_user_id_user_accounts')),
    sa.PrimaryKeyConstraint('user_id', 'role', name=op.f('pk_user_roles'))
    )
    op.create_table('family_consents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('link_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scopes', sa.String(length=128), nullable=False),
    sa.Column('granted_at', _TIMESTAMP, nullable=False),
    sa.Column('granted_by', sa.String(length=128), nullable=False),
    sa.Column('expires_at', _TIMESTAMP, nullable=True),
    sa.Column('revoked_at', _TIMESTAMP, nullable=True),
    sa.Column('revoked_by', sa.String(length=128), nullable=True),
    sa.CheckConstraint('expires_at IS NULL OR expires_at > granted_at', name=op.f('ck_family_consents_valid_range')),
    sa.ForeignKeyConstraint(['link_id'], ['family_links.id'], name=op.f('fk_family_consents_link_id_family_links')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_family_consents'))
    )
    with op.batch_alter_table('family_consents', schema=None) as batch_op:
        batch_op.create_index('ix_family_consents_link_id', ['link_id'], unique=False)

    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('date_of_birth', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('sex', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('phone', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('address', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('district', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('community', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('village', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('preferred_glucose_unit', sa.String(length=16), server_default='mmol/L', nullable=False))
        batch_op.add_column(sa.Column('e_health_card_id', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_patients_community'), ['community'], unique=False)
        batch_op.create_index('uq_patients_e_health_card_id', ['e_health_card_id'], unique=True)



def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35): a batch copy of ``patients`` would
    # drop the table under the foreign keys of every table that references it.
    op.drop_index('uq_patients_e_health_card_id', table_name='patients')
    op.drop_index(op.f('ix_patients_community'), table_name='patients')
    for column in (
        'e_health_card_id', 'preferred_glucose_unit', 'village', 'community', 'district',
        'address', 'phone', 'sex', 'date_of_birth',
    ):
        op.execute(f'ALTER TABLE patients DROP COLUMN {column}')

    with op.batch_alter_table('family_consents', schema=None) as batch_op:
        batch_op.drop_index('ix_family_consents_link_id')

    op.drop_table('family_consents')
    op.drop_table('user_roles')
    with op.batch_alter_table('team_memberships', schema=None) as batch_op:
        batch_op.drop_index('ix_team_memberships_user_id_team_id')
        batch_op.drop_index(batch_op.f('ix_team_memberships_team_id'))

    op.drop_table('team_memberships')
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_user_id'))
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_family'))

    op.drop_table('refresh_tokens')
    with op.batch_alter_table('login_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_links_user_id'))

    op.drop_table('login_links')
    with op.batch_alter_table('family_links', schema=None) as batch_op:
        batch_op.drop_index('uq_family_links_patient_id_user_id')
        batch_op.drop_index(batch_op.f('ix_family_links_user_id'))

    op.drop_table('family_links')
    with op.batch_alter_table('duty_shifts', schema=None) as batch_op:
        batch_op.drop_index('ix_duty_shifts_team_id_starts_at')
        batch_op.drop_index(batch_op.f('ix_duty_shifts_doctor_user_id'))

    op.drop_table('duty_shifts')
    with op.batch_alter_table('access_grants', schema=None) as batch_op:
        batch_op.drop_index('ix_access_grants_user_id_patient_id')

    op.drop_table('access_grants')
    op.drop_table('user_accounts')
    with op.batch_alter_table('patient_targets', schema=None) as batch_op:
        batch_op.drop_index('ix_patient_targets_patient_id_metric_effective_from')

    op.drop_table('patient_targets')
    with op.batch_alter_table('patient_status_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_patient_status_changes_patient_id_effective_from')

    op.drop_table('patient_status_changes')
    op.drop_table('patient_conditions')
    with op.batch_alter_table('monitoring_consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monitoring_consents_patient_id'))

    op.drop_table('monitoring_consents')
    with op.batch_alter_table('care_contracts', schema=None) as batch_op:
        batch_op.drop_index('uq_care_contracts_open_patient', sqlite_where=sa.text('ends_on IS NULL'), postgresql_where=sa.text('ends_on IS NULL'))
        batch_op.drop_index('ix_care_contracts_team_id_starts_on')
        batch_op.drop_index(batch_op.f('ix_care_contracts_patient_id'))

    op.drop_table('care_contracts')
    op.drop_table('care_teams')
