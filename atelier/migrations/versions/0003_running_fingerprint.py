"""identical work runs once at a time: unique fingerprint among running jobs

Revision ID: 0003_running_fingerprint
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa


revision = '0003_running_fingerprint'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'uq_jobs_running_fingerprint',
        'jobs',
        ['fingerprint'],
        unique=True,
        postgresql_where=sa.text("state = 'running'"),
        sqlite_where=sa.text("state = 'running'"),
    )


def downgrade() -> None:
    op.drop_index('uq_jobs_running_fingerprint', table_name='jobs')
