"""waiting for the customer: when the wait began, seconds waited, how far it moved the deadline

Revision ID: 0013
Revises: 0015
Create Date: 2026-12-08
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0013'
down_revision = '0015'  # merged after 0015 (branches numbered apart)
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('paused_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column('paused_s', sa.BigInteger(), nullable=False,
                                   server_default='0'))
        batch.add_column(sa.Column('paused_due_s', sa.BigInteger(), nullable=False,
                                   server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        for column in ('paused_due_s', 'paused_s', 'paused_since'):
            batch.drop_column(column)
