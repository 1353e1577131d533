"""sla clock: ticket lifecycle, escalation and report columns, ticket history, outbox send_by

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from datetime import UTC
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# The seed policy's report zone; days of tickets stored before this revision are counted there.
REPORT_ZONE = ZoneInfo("Europe/Moscow")


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('ack_at_risk', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('ack_alerted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('escalation_level', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('escalation_due', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('report_day', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sla_outcome', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('proposed_priority', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.create_index(batch_op.f('ix_tickets_escalation_due'), ['escalation_due'], unique=False)
        batch_op.drop_index('ix_tickets_customer_id')
        batch_op.create_index('ix_tickets_sla_report', ['customer_id', 'tier', 'priority', 'request_type', 'report_day', 'sla_outcome'], unique=False)
    _backfill()
    op.create_table('ticket_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('details', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_events_ticket_id'), ['ticket_id'], unique=False)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_by', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def _backfill() -> None:
    """Report day and reaction outcome of the tickets already stored."""
    tickets = sa.table('tickets', sa.column('id', sa.Integer),
                       sa.column('received_at', sqlmodel.sql.sqltypes.UTCDateTime()),
                       sa.column('reaction_due', sqlmodel.sql.sqltypes.UTCDateTime()),
                       sa.column('acknowledged_at', sqlmodel.sql.sqltypes.UTCDateTime()),
                       sa.column('report_day', sa.Integer), sa.column('sla_outcome', sa.Integer))
    connection = op.get_bind()
    rows = connection.execute(sa.select(tickets.c.id, tickets.c.received_at,
                                        tickets.c.reaction_due, tickets.c.acknowledged_at)).all()
    for ticket_id, received, reaction_due, acknowledged in rows:
        local = received.replace(tzinfo=received.tzinfo or UTC).astimezone(REPORT_ZONE)
        outcome = 0 if acknowledged is None or reaction_due is None else (
            1 if acknowledged <= reaction_due else 2)
        connection.execute(sa.update(tickets).where(tickets.c.id == ticket_id).values(
            report_day=int(local.strftime('%Y%m%d')), sla_outcome=outcome))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('send_by')
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_events_ticket_id'))
    op.drop_table('ticket_events')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_sla_report')
        batch_op.create_index('ix_tickets_customer_id', ['customer_id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_tickets_escalation_due'))
        for column in ('proposed_priority', 'sla_outcome', 'report_day', 'escalation_due', 'escalation_level',
                       'ack_alerted_at', 'ack_at_risk', 'closed_at', 'resolved_at'):
            batch_op.drop_column(column)
