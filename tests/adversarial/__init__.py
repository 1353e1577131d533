"""A standing suite of hostile and heavy input (issue 17)."""
