"""What becomes of an input: parsed, decided, threaded or registered, acknowledged, watched."""
