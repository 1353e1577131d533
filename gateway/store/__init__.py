"""How a request is kept: tables, engine and transactions, prepared statements, migrations."""
