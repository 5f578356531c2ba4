"""`python -m hvconf` is the same as the `hvconf` command."""

from hvconf.cli import main

raise SystemExit(main())
