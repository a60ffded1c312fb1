"""Entry point for ``python -m export``."""

from .cli import main

raise SystemExit(main())
