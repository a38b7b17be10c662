"""Alembic migrations of the canonical store (the tables connectors own).

The scripts here are run by `connectors.migrations.runner` from `connectors.store.make_engine`; okr_mapping keeps
its own script directory and version table for its history tables. How to add a revision: README.md beside this file.
"""

from pathlib import Path

from connectors.migrations.legacy import adopt_older_store
from connectors.migrations.runner import Layer

STORE_SCHEMA = Layer(package="connectors", script_location=Path(__file__).parent,
                     version_table="okr_sync_store_version", adopt=adopt_older_store)
