"""The reliability suite (issue 7) shares the flow tests' Prefect harness and CLI environment."""

from tests.flows.conftest import cli_env, prefect_harness, sandbox_env  # noqa: F401 - fixtures
