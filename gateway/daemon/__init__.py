"""The process: the service that runs everything, its worker processes, systemd, logs."""
