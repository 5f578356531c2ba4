"""`python -m hvconf` is the same as the `hvconf` command."""

from hvconf.cli.main import main

raise SystemExit(main())
