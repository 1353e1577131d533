"""Examples of integrations, each a thin adapter to one of the gateway's doors."""
