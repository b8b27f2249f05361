"""``python -m osvkit`` runs the CLI."""
from osvkit.cli import main

raise SystemExit(main())
