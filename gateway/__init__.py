"""Intake Gateway: the front door of a technical-support service."""
