"""Alembic migrations of the check-in history tables (okr_mapping's own, beside the store connectors migrate).

Run by `okr_mapping.history.ensure_tables` through connectors.migrations.runner, with their own version table;
how to add a revision: connectors/migrations/README.md (the same steps, with `python -m okr_mapping.migrations`).
"""
