"""Ticket trackers the gateway hands tickets to (Request Tracker 5, and room for others)."""
