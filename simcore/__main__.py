"""`python -m simcore`: the command line."""

from simcore.cli import main

raise SystemExit(main())
