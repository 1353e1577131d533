"""portal sign-ins: one-time links sent to customers' people

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'portal_sign_ins',
        sa.Column('nonce', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('nonce'))
    op.create_index('ix_portal_sign_ins_email', 'portal_sign_ins', ['email'])


def downgrade() -> None:
    op.drop_index('ix_portal_sign_ins_email', table_name='portal_sign_ins')
    op.drop_table('portal_sign_ins')
