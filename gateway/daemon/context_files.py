"""The daemon's context from its files (policy, customers, rules) and the customers' mirror."""

from __future__ import annotations

import json
from email.utils import parseaddr

from sqlalchemy import Engine

from gateway.clock import Clock
from gateway.config.customers import Directory, load_customers
from gateway.config.rules_file import load_rules_file
from gateway.config.settings import LoadedSettings
from gateway.sla.policy import load_policy_for
from gateway.store.db import transaction
from gateway.store.models import Customer
from gateway.tickets.context import Context


def sync_customers(engine: Engine, directory: Directory) -> None:
    """Mirror the customers file into the customers table for joins and reports."""
    with transaction(engine) as session:
        for entry in directory.customers:
            session.merge(Customer(
                id=entry.id, name=entry.name, tier=entry.tier, language=entry.language,
                emails=json.dumps(entry.emails), domains=json.dumps(entry.domains),
                phones=json.dumps(entry.phones), engineer=entry.engineer, manager=entry.manager))


def build_context(loaded: LoadedSettings, clock: Clock) -> Context:
    """Policy, customers and addresses from the files; ConfigError when any is bad."""
    settings = loaded.settings
    own = {parseaddr(settings.outgoing.sender)[1].lower()}
    if settings.smtp:
        own |= {r.lower() for r in settings.smtp.recipients}
    own |= {m.username.lower() for m in settings.mailboxes if "@" in m.username}
    policy = load_policy_for(settings)
    directory = load_customers(settings.files.customers, tuple(policy.tiers))
    return Context(settings, directory, clock, frozenset(own), policy,
                   load_rules_file(settings.files.rules))
