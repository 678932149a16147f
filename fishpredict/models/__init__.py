"""What a model is, independent of HTTP: signatures, file formats, fast paths."""
