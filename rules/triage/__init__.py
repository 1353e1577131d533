"""Triage: the seed's facts read from a request's words, and the table that decides priority."""
