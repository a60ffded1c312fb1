"""``python -m loadtest.bench`` (``make bench``): the core benchmark of ``loadtest.bench.core``."""

from loadtest.bench.core import main

if __name__ == "__main__":
    raise SystemExit(main())
