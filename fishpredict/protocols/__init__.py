"""How a request names a model and carries rows: one module per protocol."""
