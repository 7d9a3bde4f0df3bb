"""`python -m orisel` is the `orisel` command."""

from orisel.client.cli import main

raise SystemExit(main())
