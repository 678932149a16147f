"""The built-in serving backends of fishpredict, imported as ``fishpredict_backends``."""
