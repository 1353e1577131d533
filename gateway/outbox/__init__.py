"""How an answer gets out: composed from templates, queued, sent by the worker, journalled."""
