"""A Telegram bot that hands its chats to the Intake Gateway (docs/chat.md)."""
