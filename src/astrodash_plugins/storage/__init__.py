"""Built-in storage backends for uploaded models (registered through the ``register_storage`` hook)."""
