"""Alembic environment of the check-in history tables, loaded by connectors.migrations.runner (no alembic.ini)."""

from alembic import context

from connectors.migrations.runner import run_environment
from okr_mapping.history import HISTORY_SCHEMA  # noqa: F401  (imports the models autogenerate compares with)
from okr_mapping.period_close import KrFinal  # noqa: F401

run_environment(context)
