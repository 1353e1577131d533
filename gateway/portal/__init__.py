"""The customer's window: signed links to one request, and a portal by e-mail sign-in."""
