"""Operations: the systemd unit, the lifecycle under a supervisor, metrics, fuzzing."""
