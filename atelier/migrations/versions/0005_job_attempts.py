"""each attempt at a job is a row of its own: worker, message, times, outcome, error

Revision ID: 0005_job_attempts
Revises: 0004_job_warning
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_job_attempts'
down_revision = '0004_job_warning'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'job_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('worker', sa.String(length=255), nullable=False),
        sa.Column('task_id', sa.String(length=64), nullable=True),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('job_id', 'attempt', name='uq_attempt_job_attempt'),
    )
    op.create_index(op.f('ix_job_attempts_job_id'), 'job_attempts', ['job_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_job_attempts_job_id'), table_name='job_attempts')
    op.drop_table('job_attempts')
