"""tracker links: our tickets' counterparts in Request Tracker (and other trackers)

Revision ID: 0011
Revises: 0016
Create Date: 2026-12-08
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0011'
down_revision = '0016'  # merged after 0016 (branches numbered apart)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tracker_links',
    sa.Column('tracker', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('ticket_number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('remote_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('remote_status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('last_message_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('tracker', 'ticket_number'),
    sa.UniqueConstraint('tracker', 'remote_id', name='uq_tracker_remote')
    )
    op.create_table('tracker_cursors',
    sa.Column('tracker', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('changed_since', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('tracker')
    )


def downgrade() -> None:
    op.drop_table('tracker_cursors')
    op.drop_table('tracker_links')
