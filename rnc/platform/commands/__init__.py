"""One module per ``rnc-platform`` command; each exposes ``register(app)``."""
