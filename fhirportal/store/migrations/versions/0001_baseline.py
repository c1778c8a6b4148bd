"""Baseline: the schema of the first release with migrations (commit 96d475c).

A database that release created has no ``alembic_version`` table; ``fhirportal.store.migrate``
recognises its tables and stamps it as this revision instead of running it. On an empty database
this creates everything.

Locks (PostgreSQL): only new, empty tables; nothing existing is touched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('recorded', sa.DateTime(timezone=True), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('fhir_user', sa.String(length=200), nullable=True),
    sa.Column('client_id', sa.String(length=128), nullable=True),
    sa.Column('patient_id', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=True),
    sa.Column('query', sa.Text(), nullable=True),
    sa.Column('outcome', sa.Integer(), nullable=False),
    sa.Column('materialized', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_access_log_patient', 'access_log', ['patient_id', 'recorded'])
    op.create_index('ix_access_log_pending', 'access_log', ['materialized', 'id'])

    op.create_table('account',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('fhir_user', sa.String(length=200), nullable=True),
    sa.Column('organization', sa.String(length=200), nullable=True),
    sa.Column('roles', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('export_job',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('request', sa.Text(), nullable=False),
    sa.Column('types', sa.Text(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('group_id', sa.String(length=64), nullable=True),
    sa.Column('transaction_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('progress', sa.Text(), nullable=True),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('client_id', sa.String(length=128), nullable=False),
    sa.Column('members', sa.Text(), nullable=True),
    sa.Column('type_filter', sa.Text(), nullable=True),
    sa.Column('scope', sa.Text(), nullable=True),
    sa.Column('patient', sa.String(length=64), nullable=True),
    sa.Column('organization', sa.String(length=64), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('fhir_user', sa.String(length=200), nullable=True),
    sa.Column('worker', sa.String(length=64), nullable=True),
    sa.Column('heartbeat', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_export_job_status', 'export_job', ['status'])

    op.create_table('login_session',
    sa.Column('session_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('auth_time', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('session_hash')
    )
    op.create_table('oauth_authorization_code',
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=128), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('redirect_uri', sa.Text(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('nonce', sa.Text(), nullable=True),
    sa.Column('code_challenge', sa.Text(), nullable=True),
    sa.Column('code_challenge_method', sa.String(length=16), nullable=True),
    sa.Column('context', sa.Text(), nullable=False),
    sa.Column('auth_time', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('code_hash')
    )
    op.create_table('oauth_client',
    sa.Column('client_id', sa.String(length=128), nullable=False),
    sa.Column('client_secret_hash', sa.String(length=128), nullable=True),
    sa.Column('client_metadata', sa.Text(), nullable=False),
    sa.Column('issued_at', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('client_id')
    )
    op.create_table('oauth_client_assertion',
    sa.Column('client_id', sa.String(length=128), nullable=False),
    sa.Column('jti', sa.String(length=256), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('client_id', 'jti')
    )
    op.create_table('oauth_token',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('access_token_hash', sa.String(length=64), nullable=False),
    sa.Column('refresh_token_hash', sa.String(length=64), nullable=True),
    sa.Column('grant_id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=128), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('context', sa.Text(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refresh_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('access_token_hash'),
    sa.UniqueConstraint('refresh_token_hash')
    )
    op.create_index('ix_oauth_token_account_client', 'oauth_token', ['account_id', 'client_id'])
    op.create_index('ix_oauth_token_code', 'oauth_token', ['code_hash'])
    op.create_index('ix_oauth_token_grant', 'oauth_token', ['grant_id'])

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_outbox_recipient', 'outbox', ['recipient', 'id'])

    op.create_table('portal_invitation',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subject_type', sa.String(length=16), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=64), nullable=True),
    sa.Column('pin_encrypted', sa.Text(), nullable=False),
    sa.Column('pin_hash', sa.String(length=64), nullable=False),
    sa.Column('link_hash', sa.String(length=64), nullable=True),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivery_error', sa.Text(), nullable=True),
    sa.Column('code_hash', sa.String(length=64), nullable=True),
    sa.Column('code_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('code_requests', sa.Integer(), nullable=False),
    sa.Column('consent_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('link_hash')
    )
    op.create_index('ix_portal_invitation_subject', 'portal_invitation', ['subject_type', 'subject_id', 'id'])

    op.create_table('practice_setting',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('resource',
    sa.Column('pid', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('fhir_id', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('last_updated', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('content', sa.Text(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('marks', sa.SmallInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('pid'),
    sa.UniqueConstraint('resource_type', 'fhir_id', name='uq_resource_type_id')
    )
    op.create_index('ix_resource_type_updated', 'resource', ['resource_type', 'last_updated'])

    op.create_table('signing_key',
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('private_jwk', sa.Text(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kid')
    )
    op.create_table('smart_launch',
    sa.Column('launch_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('context', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('launch_hash')
    )
    op.create_table('account_patient',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('account_id', 'patient_id')
    )
    op.create_table('ix_date',
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('low', sa.BigInteger(), nullable=False),
    sa.Column('high', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['pid'], ['resource.pid'], )
    )
    op.create_index('ix_ix_date_0', 'ix_date', ['resource_type', 'param', 'low'])
    op.create_index('ix_ix_date_1', 'ix_date', ['resource_type', 'param', 'high'])
    op.create_index('ix_ix_date_pid', 'ix_date', ['pid'])

    op.create_table('ix_number',
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['pid'], ['resource.pid'], )
    )
    op.create_index('ix_ix_number_0', 'ix_number', ['resource_type', 'param', 'value'])
    op.create_index('ix_ix_number_pid', 'ix_number', ['pid'])

    op.create_table('ix_quantity',
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('system', sa.String(length=255), nullable=True),
    sa.Column('code', sa.String(length=255), nullable=True),
    sa.Column('unit', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['pid'], ['resource.pid'], )
    )
    op.create_index('ix_ix_quantity_0', 'ix_quantity', ['resource_type', 'param', 'code', 'value'])
    op.create_index('ix_ix_quantity_pid', 'ix_quantity', ['pid'])

    op.create_table('ix_reference',
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=True),
    sa.Column('target_id', sa.String(length=64), nullable=True),
    sa.Column('url', sa.String(length=1024), nullable=True),
    sa.ForeignKeyConstraint(['pid'], ['resource.pid'], )
    )
    op.create_index('ix_ix_reference_0', 'ix_reference', ['target_type', 'target_id', 'param'])
    op.create_index('ix_ix_reference_1', 'ix_reference', ['resource_type', 'param', 'target_id'])
    op.create_index('ix_ix_reference_pid', 'ix_reference', ['pid'])

    op.create_table('ix_string',
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('norm', sa.String(length=255).with_variant(sa.String(length=255, collation='C'), 'postgresql'),
              nullable=False),
    sa.Column('exact', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['pid'], ['resource.pid'], )
    )
    op.create_index('ix_ix_string_0', 'ix_string', ['resource_type', 'param', 'norm'])
    op.create_index('ix_ix_string_pid', 'ix_string', ['pid'])

    op.create_table('ix_token',
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(length=255), nullable=True),
    sa.Column('code', sa.String(length=255), nullable=True),
    sa.Column('text', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['pid'], ['resource.pid'], )
    )
    op.create_index('ix_ix_token_0', 'ix_token', ['resource_type', 'param', 'code', 'system'])
    op.create_index('ix_ix_token_pid', 'ix_token', ['pid'])

    op.create_table('ix_uri',
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('uri', sa.String(length=1024), nullable=False),
    sa.ForeignKeyConstraint(['pid'], ['resource.pid'], )
    )
    op.create_index('ix_ix_uri_0', 'ix_uri', ['resource_type', 'param', 'uri'])
    op.create_index('ix_ix_uri_pid', 'ix_uri', ['pid'])

    op.create_table('resource_version',
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('fhir_id', sa.String(length=64), nullable=False),
    sa.Column('last_updated', sa.DateTime(timezone=True), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('content', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['pid'], ['resource.pid'], ),
    sa.PrimaryKeyConstraint('pid', 'version_id')
    )
    op.create_index('ix_version_type_updated', 'resource_version', ['resource_type', 'last_updated'])
    op.create_index('ix_version_updated', 'resource_version', ['last_updated'])

    op.create_table('staff_phr_setting',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('auto_invite_on_signed_note', sa.Boolean(), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id')
    )


def downgrade() -> None:
    op.drop_table('staff_phr_setting')
    op.drop_table('resource_version')
    op.drop_table('ix_uri')
    op.drop_table('ix_token')
    op.drop_table('ix_string')
    op.drop_table('ix_reference')
    op.drop_table('ix_quantity')
    op.drop_table('ix_number')
    op.drop_table('ix_date')
    op.drop_table('account_patient')
    op.drop_table('smart_launch')
    op.drop_table('signing_key')
    op.drop_table('resource')
    op.drop_table('practice_setting')
    op.drop_table('portal_invitation')
    op.drop_table('outbox')
    op.drop_table('oauth_token')
    op.drop_table('oauth_client_assertion')
    op.drop_table('oauth_client')
    op.drop_table('oauth_authorization_code')
    op.drop_table('login_session')
    op.drop_table('export_job')
    op.drop_table('account')
    op.drop_table('access_log')
