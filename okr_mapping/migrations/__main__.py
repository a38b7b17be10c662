"""`python -m okr_mapping.migrations revision -m "..."`: see connectors/migrations/README.md."""

from connectors.migrations.cli import main
from okr_mapping.history import HISTORY_SCHEMA

raise SystemExit(main(HISTORY_SCHEMA))
