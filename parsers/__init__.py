"""Parsers: raw bytes and payloads in, one normalised Request out; no I/O, no gateway imports."""
