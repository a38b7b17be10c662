"""`python -m connectors.migrations revision -m "..."`: see README.md beside this file."""

import connectors.store  # noqa: F401  (the models)
from connectors.migrations import STORE_SCHEMA
from connectors.migrations.cli import main

raise SystemExit(main(STORE_SCHEMA))
