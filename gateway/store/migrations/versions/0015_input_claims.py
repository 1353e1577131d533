"""input claims: until when an instance processes an input (several instances, one database)

Revision ID: 0015
Revises: 0009
Create Date: 2026-12-08
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0015'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inputs') as batch:
        batch.add_column(sa.Column('claimed_until', sqlmodel.sql.sqltypes.UTCDateTime(),
                                   nullable=True))
        batch.add_column(sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=200),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inputs') as batch:
        batch.drop_column('claimed_by')
        batch.drop_column('claimed_until')
