"""``python -m fishpredict``: the command line."""

from fishpredict.cli import main

raise SystemExit(main())
