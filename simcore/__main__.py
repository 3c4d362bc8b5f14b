"""`python -m simcore`: the command line."""

from simcore.cli.main import main

raise SystemExit(main())
