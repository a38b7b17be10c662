"""Where and when a config runs: the nightly schedule, and the CRM orgs one config serves.

An org names where its credentials and its store URL are — an environment variable prefix and
Prefect Secret block names — never the values: flows.credentials reads them inside each flow run.
`okr-sync deployments` / `okr-sync serve` make one nightly deployment per org (docs/scheduling.md).

    schedule: {cron: "0 2 * * *"}          # in the config's time_zone
    orgs:
      - name: acme-emea
        sources: [salesforce]
        store: {env: ACME_EMEA_DATABASE_URL}
        credentials:
          env_prefix: ACME_EMEA_             # ACME_EMEA_SALESFORCE_ACCESS_TOKEN, ...
          secret_blocks: {SALESFORCE_CLIENT_SECRET: acme-emea-sf-client-secret}
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from okr_mapping.config_base import StrictModel
from okr_mapping.errors import did_you_mean

DEFAULT_CRON = "0 2 * * *"
ORG_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
BLOCK_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")  # Prefect block names: lowercase, digits, dashes
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
ENV_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*_$")

# The variables a connector reads its connection from (connectors.salesforce.auth / from_env,
# connectors.hubspot.settings; tests/flows/test_credentials.py keeps the two in step). With an
# env_prefix these are read only with the prefix; each may instead come from a Secret block.
CONNECTION_VARIABLES: dict[str, tuple[str, ...]] = {
    "salesforce": ("SALESFORCE_INSTANCE_URL", "SALESFORCE_ACCESS_TOKEN", "SALESFORCE_USERNAME",
                   "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN", "SALESFORCE_CLIENT_ID",
                   "SALESFORCE_CLIENT_SECRET", "SALESFORCE_REFRESH_TOKEN", "SALESFORCE_DOMAIN",
                   "SALESFORCE_API_VERSION"),
    "hubspot": ("HUBSPOT_ACCESS_TOKEN", "HUBSPOT_HOST", "OKR_SYNC_HUBSPOT_TIER"),
}
ALL_CONNECTION_VARIABLES = tuple(name for names in CONNECTION_VARIABLES.values() for name in names)

_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
                ("day of week", 0, 7))
_NAMES = {3: ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
          4: ("sun", "mon", "tue", "wed", "thu", "fri", "sat")}
_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_HELP = "five fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *' = 2:00 every day"


def cron_problem(expression: str) -> str | None:
    """Why `expression` is not a standard five-field cron schedule (None when it is one).

    Written out rather than borrowed so the message names the field that is wrong; Prefect checks
    the same expression again when it creates the schedule.
    """
    if expression.strip().lower() in _MACROS:
        return None
    fields = expression.split()
    if len(fields) != 5:
        return f"it has {len(fields)} field(s); a cron schedule has {_CRON_HELP}"
    for index, (text, (name, low, high)) in enumerate(zip(fields, _CRON_FIELDS, strict=True)):
        for item in text.split(","):
            problem = _cron_item_problem(item.lower(), low, high, _NAMES.get(index, ()))
            if problem:
                return f"the {name} field '{text}' {problem} ({_CRON_HELP})"
    return None


def _cron_item_problem(item: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    span, _, step = item.partition("/")
    if step and not (step.isdigit() and int(step) >= 1):
        return f"has a step '/{step}' that is not a whole number above 0"
    if span == "*":
        return None
    ends = span.split("-")
    if len(ends) > 2 or not all(ends):
        return f"has '{item}', which is not a number, a range a-b or *"
    values = []
    for end in ends:
        if end.isdigit():
            values.append(int(end))
        elif end in names:
            values.append(names.index(end) + (1 if low == 1 else 0))
        else:
            return f"has '{end}', which is not a number" + (f" or a name ({', '.join(names)})" if names else "")
    if not all(low <= value <= high for value in values):
        return f"must be {low}-{high}, got {span}"
    if len(values) == 2 and values[0] > values[1]:
        return f"has the range {span}, which runs backwards"
    return None


class Schedule(StrictModel):
    """When the nightly deployment runs: a cron schedule in the config's time_zone."""

    cron: str = Field(DEFAULT_CRON, description=(
        "A cron schedule (minute hour day-of-month month day-of-week) in the config's time_zone, e.g. "
        "'0 2 * * *' for 2:00 every night, '30 1 * * 1-5' for 1:30 on weekdays"))

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        problem = cron_problem(value)
        if problem:
            raise ValueError(f"'{value}' is not a cron schedule: {problem}")
        return value.strip()


class StoreRef(StrictModel):
    """Where an org's store URL is: an environment variable, or a Prefect Secret block (a URL with a password)."""

    env: str | None = Field(None, description="The environment variable holding the store URL")
    secret_block: str | None = Field(None, description="The Prefect Secret block holding the store URL")

    @field_validator("env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError(f"'{value}' is not an environment variable name (capitals, digits and _)")
        return value

    @field_validator("secret_block")
    @classmethod
    def _block_name(cls, value: str | None) -> str | None:
        return _checked_block_name(value)

    @model_validator(mode="after")
    def _one_place(self) -> StoreRef:
        if (self.env is None) == (self.secret_block is None):
            raise ValueError("name the store URL's place once: either env: VARIABLE or secret_block: block-name")
        return self

    def describe(self) -> str:
        return f"${self.env}" if self.env else f"Secret block '{self.secret_block}'"


class Credentials(StrictModel):
    """Where an org's CRM credentials come from: never the values, only where they are."""

    env_prefix: str | None = Field(None, description=(
        "Read the connection variables with this prefix, e.g. ACME_ reads ACME_HUBSPOT_ACCESS_TOKEN as "
        "HUBSPOT_ACCESS_TOKEN; the unprefixed ones are then ignored for this org"))
    secret_blocks: dict[str, str] = Field(default_factory=dict, description=(
        "Connection variable -> Prefect Secret block holding its value, e.g. "
        "{HUBSPOT_ACCESS_TOKEN: acme-hubspot-token}; a block wins over the environment"))

    @field_validator("env_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not ENV_PREFIX.match(value):
            raise ValueError(f"'{value}' is not an environment variable prefix: capitals, digits and _, "
                             "ending in _ (e.g. ACME_)")
        return value

    @field_validator("secret_blocks")
    @classmethod
    def _blocks(cls, blocks: dict[str, str]) -> dict[str, str]:
        problems = []
        for variable, block in blocks.items():
            if variable not in ALL_CONNECTION_VARIABLES:
                hint = did_you_mean(variable, ALL_CONNECTION_VARIABLES)
                problems.append(_error((variable,), f"'{variable}' is not a connection variable okr-sync reads"
                                       + (f"; did you mean '{hint}'?" if hint else
                                          f"; use one of {', '.join(ALL_CONNECTION_VARIABLES)}"), variable))
                continue
            try:
                _checked_block_name(block)
            except ValueError as error:
                problems.append(_error((variable,), str(error), block))
        if problems:
            raise ValidationError.from_exception_data("secret_blocks", problems)
        return blocks


class Org(StrictModel):
    """One CRM org (or portal) this config is run for: its own credentials, its own store, its own deployment."""

    name: str = Field(description="A short slug: lowercase letters, digits and dashes, e.g. acme-emea")
    sources: list[Literal["salesforce", "hubspot"]] | None = Field(
        None, min_length=1, description="The CRMs of this org to sync (default: the config's source)")
    store: StoreRef | None = Field(None, description=(
        "Where this org's store URL is (required when the config has several orgs: each keeps its own store)"))
    credentials: Credentials = Field(default_factory=Credentials)
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not ORG_NAME.match(value):
            raise ValueError(f"'{value}' is not an org name: use lowercase letters, digits and dashes (at most 40), "
                             "e.g. acme-emea")
        return value

    @field_validator("sources")
    @classmethod
    def _distinct_sources(cls, sources: list[str] | None) -> list[str] | None:
        if sources is not None and len(set(sources)) != len(sources):
            raise ValueError("a CRM is listed twice; name each of salesforce and hubspot once")
        return sources


def check_orgs(orgs: list[Org]) -> list[Org]:
    """Orgs must not share a name, a store or credentials: each run would otherwise read or overwrite
    another org's data. Raises a ValidationError located at the entry that repeats."""
    problems: list[InitErrorDetails] = []
    seen_names: dict[str, int] = {}
    seen_stores: dict[tuple[str | None, str | None], int] = {}
    seen_prefixes: dict[str | None, int] = {}
    for index, org in enumerate(orgs):
        if org.name in seen_names:
            problems.append(_error((index, "name"), f"org '{org.name}' is already defined (entry "
                                   f"{seen_names[org.name] + 1}); give each org its own name", org.name))
        seen_names.setdefault(org.name, index)
        if len(orgs) > 1 and org.store is None:
            problems.append(_error((index, "name"), f"org '{org.name}' needs store: {{env: VARIABLE}} or "
                                   "{secret_block: name}: with several orgs, each keeps its own store", org.name))
        elif org.store is not None:
            key = (org.store.env, org.store.secret_block)
            if key in seen_stores:
                other = orgs[seen_stores[key]].name
                problems.append(_error((index, "store"), f"org '{org.name}' uses the same store as org '{other}' "
                                       f"({org.store.describe()}); each org needs its own", org.name))
            seen_stores.setdefault(key, index)
        prefix = org.credentials.env_prefix
        if prefix in seen_prefixes:
            other = orgs[seen_prefixes[prefix]].name
            where = f"env_prefix {prefix}" if prefix else "no env_prefix"
            problems.append(_error((index, "credentials"), f"orgs '{other}' and '{org.name}' both have {where}, "
                                   "so they would read the same credentials; give each org its own env_prefix",
                                   org.name))
        seen_prefixes.setdefault(prefix, index)
    if problems:
        raise ValidationError.from_exception_data("orgs", problems)
    return orgs


def _checked_block_name(value: str | None) -> str | None:
    if value is not None and not BLOCK_NAME.match(value):
        raise ValueError(f"'{value}' is not a Prefect block name: lowercase letters, digits and dashes")
    return value


def _error(loc: tuple[int | str, ...], message: str, value: object) -> InitErrorDetails:
    """One located error (pydantic adds the field's own place in front of `loc`)."""
    return InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)
