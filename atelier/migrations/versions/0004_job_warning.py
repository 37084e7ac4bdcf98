"""a finished job may carry a warning: a video in which no face was found, or a face was lost

Revision ID: 0004_job_warning
Revises: 0003_running_fingerprint
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0004_job_warning'
down_revision = '0003_running_fingerprint'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('warning', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('jobs', 'warning')
