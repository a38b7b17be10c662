"""Alembic environment of the canonical store, loaded by connectors.migrations.runner (there is no alembic.ini)."""

from alembic import context

import connectors.store  # noqa: F401  (the models autogenerate compares with)
from connectors.migrations.runner import run_environment

run_environment(context)
