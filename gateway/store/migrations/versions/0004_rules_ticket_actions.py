"""rules: tags, assigned engineer and copied manager on tickets

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('tags', sa.Text(), nullable=False, server_default='[]'))
        batch.add_column(sa.Column('assignee', sa.Text(), nullable=True))
        batch.add_column(sa.Column('manager_cc', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        batch.drop_column('manager_cc')
        batch.drop_column('assignee')
        batch.drop_column('tags')
