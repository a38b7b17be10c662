"""Who answers for a result in the CRM: config owners (emails) matched to the CRM's users.

Objectives and key results name their owners by email; the store holds each CRM's users with
their emails (the owner table), so a result can be written with the CRM user as its owner, and
an email no user has is a warning with a did-you-mean for a typo.
"""

from __future__ import annotations

import difflib

from sqlalchemy import select
from sqlalchemy.engine import Connection

from okr_mapping.config import OkrConfig
from okr_mapping.entities import OWNER_TABLE
from okr_mapping.errors import Issue


def crm_users(conn: Connection, source: str) -> dict[str, str]:
    """Lower-cased email -> CRM user id of the source's users in the store (owners are matched by email)."""
    rows = conn.execute(select(OWNER_TABLE.c.email, OWNER_TABLE.c.source_id)
                        .where(OWNER_TABLE.c.source == source, OWNER_TABLE.c.email.is_not(None)))
    return {str(email).lower(): str(user_id) for email, user_id in rows}


def unknown_owners(config: OkrConfig, users: dict[str, str], source: str) -> list[Issue]:
    """A warning per objective or KR owner that no CRM user of `source` has as email."""
    if not users:  # nothing synced yet: every owner would be unknown
        return []
    issues = []
    for index, objective in enumerate(config.objectives):
        owners = [(("objectives", index, "owner"), objective.owner)]
        owners += [(("objectives", index, "key_results", kr_index, "owner"), kr.owner)
                   for kr_index, kr in enumerate(objective.key_results)]
        for path, owner in owners:
            if owner and owner.lower() not in users:
                issues.append(config.issue(
                    "warning", path, f"no {source} user has the email '{owner}'; the result is written without "
                    "a CRM owner", close_email(owner.lower(), list(users))))
    return issues


def close_email(email: str, known: list[str]) -> str | None:
    """A known email that differs from `email` by a typo (the shared domain alone is no likeness)."""
    match = difflib.get_close_matches(email, known, n=1, cutoff=0.85)
    return match[0] if match else None


def owner_teams(conn: Connection, source: str) -> dict[str, str]:
    """Lower-cased email -> team of the source's users in the store that have both (digest, period close)."""
    rows = conn.execute(select(OWNER_TABLE.c.email, OWNER_TABLE.c.team)
                        .where(OWNER_TABLE.c.source == source, OWNER_TABLE.c.email.is_not(None),
                               OWNER_TABLE.c.team.is_not(None)))
    return {str(email).lower(): str(team) for email, team in rows}
