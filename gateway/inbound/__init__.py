"""Channels through which requests reach the intake door."""
