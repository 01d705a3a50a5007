"""The individual grounding checks; each is a small class with `name`, `defaults` and `run`."""
