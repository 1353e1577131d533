"""threads and loops: thread ids (ghosts included), undeliverable addresses, follow-ups

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('thread_ids',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=998), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_thread_ids_ticket_id', 'thread_ids', ['ticket_id'])
    op.create_index('ix_thread_ids_message_id', 'thread_ids', ['message_id'])
    # Threads of tickets registered before this revision: their messages' own ids.
    op.execute("INSERT INTO thread_ids (ticket_id, message_id) SELECT DISTINCT ticket_id, "
               "message_id FROM ticket_messages WHERE message_id IS NOT NULL")
    op.create_table('undeliverable',
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('address')
    )
    op.create_index('ix_outbox_recipient_created', 'outbox', ['recipient', 'created_at'])
    with op.batch_alter_table('tickets') as batch:
        batch.add_column(sa.Column('follows_up', sqlmodel.sql.sqltypes.AutoString(length=32),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tickets') as batch:
        batch.drop_column('follows_up')
    op.drop_index('ix_outbox_recipient_created', table_name='outbox')
    op.drop_table('undeliverable')
    op.drop_table('thread_ids')
