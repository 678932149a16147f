"""Exact numpy fast paths, one module per estimator family."""
