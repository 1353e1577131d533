"""input bodies: raw bytes in their own table, so an input's row stays a few hundred bytes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

SQLite writes a whole row on every update: with the raw message inline (28 KB on average,
in overflow pages), each status change rewrote the message, and reading any column after
it walked its overflow chain. PostgreSQL kept the bytes out of line already (TOAST).
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('input_bodies',
    sa.Column('input_id', sa.Integer(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['input_id'], ['inputs.id'], ),
    sa.PrimaryKeyConstraint('input_id')
    )
    op.execute('INSERT INTO input_bodies (input_id, raw) SELECT id, raw FROM inputs')
    # Not in batch mode: SQLite (3.35+) drops a column in place, where a batch would rebuild
    # the table that tickets and ticket messages refer to.
    op.drop_column('inputs', 'raw')


def downgrade() -> None:
    op.add_column('inputs', sa.Column('raw', sa.LargeBinary(), nullable=True))
    op.execute('UPDATE inputs SET raw = (SELECT raw FROM input_bodies '
               'WHERE input_bodies.input_id = inputs.id)')
    op.drop_table('input_bodies')
