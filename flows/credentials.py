"""The environment a run's connectors read, assembled inside the flow run from where the config says.

Without an org (or for an org without `credentials`), the connectors read the process environment,
as `okr-sync run` always did. An org's `env_prefix` (ACME_) makes its connection variables come from
ACME_HUBSPOT_ACCESS_TOKEN and so on, and hides the unprefixed ones, so one org never borrows another's
credentials; its `secret_blocks` replace single variables by the value of a Prefect Secret block,
loaded in the flow run (so a deployment's parameters and the worker's environment hold no secret).
The store URL comes from the org's `store` the same two ways.

Values are never logged nor put in a message: only variable and block names are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from connectors.errors import ConnectorConfigError
from okr_mapping.deployment_config import ALL_CONNECTION_VARIABLES, Org

SecretLoader = Callable[[str], str]


def load_secret_block(name: str) -> str:
    """The text held by the Prefect Secret block `name` (read through the run's Prefect API)."""
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name).get()
    except Exception as error:  # a missing block is a ValueError; an unreachable API, anything
        raise ConnectorConfigError(
            f"cannot read the Prefect Secret block '{name}' ({type(error).__name__}); create it with "
            f"`prefect block create secret` or Secret(value=...).save('{name}') (docs/scheduling.md)") from None
    if not isinstance(value, str) or not value:
        raise ConnectorConfigError(f"the Prefect Secret block '{name}' must hold a non-empty text value")
    return value


def connection_env(org: Org | None, env: Mapping[str, str] | None = None,
                   load_secret: SecretLoader = load_secret_block) -> dict[str, str]:
    """What `make_source(name, env=...)` reads for `org` (None: the process environment as it is)."""
    environment = dict(os.environ if env is None else env)
    if org is None:
        return environment
    prefix = org.credentials.env_prefix
    if prefix:
        environment = {name: value for name, value in environment.items() if name not in ALL_CONNECTION_VARIABLES}
        environment.update({name[len(prefix):]: value for name, value in (env or os.environ).items()
                            if name.startswith(prefix) and len(name) > len(prefix)})
    for variable, block in org.credentials.secret_blocks.items():
        environment[variable] = load_secret(block)
    return environment


def store_url(org: Org | None, env: Mapping[str, str] | None = None,
              load_secret: SecretLoader = load_secret_block) -> str | None:
    """The org's store URL from its `store` (None: no org or no store named; the default store is used)."""
    if org is None or org.store is None:
        return None
    if org.store.secret_block:
        return load_secret(org.store.secret_block)
    assert org.store.env is not None
    value = (os.environ if env is None else env).get(org.store.env, "").strip()
    if not value:
        raise ConnectorConfigError(f"the store of org '{org.name}' is not set: set {org.store.env} to its "
                                   "database URL (e.g. postgresql+psycopg://user@host/okr_sync)")
    return value


def where_from(org: Org | None) -> str:
    """Where `org`'s credentials come from, for the run log (names only, never a value)."""
    if org is None:
        return "credentials from the environment"
    parts = [f"{org.credentials.env_prefix}* environment variables" if org.credentials.env_prefix
             else "the environment"]
    parts += [f"{variable} from Secret block '{block}'" for variable, block in org.credentials.secret_blocks.items()]
    store = f"; store URL from {org.store.describe()}" if org.store else ""
    return f"org {org.name}: credentials from {', '.join(parts)}{store}"
