"""Allow `python -m hsl_live`."""

from hsl_live.cli import main

raise SystemExit(main())
