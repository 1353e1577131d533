"""a chat channel: where a ticket's customer is answered when not by e-mail

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-08
"""

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0014'  # merged after 0014 (branches numbered apart)
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('reply_to', sa.Text(), nullable=True))
        batch.create_index('ix_tickets_reply_to', ['reply_to'])


def downgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        batch.drop_index('ix_tickets_reply_to')
        batch.drop_column('reply_to')
