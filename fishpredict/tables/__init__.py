"""Tables of rows in files: CSV, Parquet and ``.npy``, read and written in chunks."""
