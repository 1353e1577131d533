"""sender authentication: SPF, DKIM and DMARC results stored on each e-mail input

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-07

Found once, when the input is first processed, and kept: a retry or a release reads the
verdict the message had when it arrived, not what DNS says days later.
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('inputs', sa.Column('authentication', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inputs') as batch:
        batch.drop_column('authentication')
