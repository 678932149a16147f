"""Bulk scoring: many rows from files, through a running server or on a Dask cluster."""
