"""``python -m fishpredict``: the command line."""

from .cli import main

raise SystemExit(main())
