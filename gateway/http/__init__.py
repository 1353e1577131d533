"""The HTTP channel: webhooks, web requests and the admin API, served in the daemon's loop."""
