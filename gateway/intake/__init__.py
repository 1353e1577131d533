"""How a request gets in: the one door, the limits at the edge, the SMTP and IMAP channels."""
