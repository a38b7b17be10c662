"""The command line's two consoles and its one way to fail with a message and an exit code."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from okr_mapping.config import OkrConfig

# Wide enough for the KR table even when the output is a pipe or a CI log.
console = Console(width=None if Console().is_terminal else 110)
errors = Console(stderr=True)


def fail(message: str, code: int) -> typer.Exit:
    """Print `message` on stderr and return the Exit to raise (1 failure, 2 bad input or config)."""
    errors.print(f"[red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def checked_source_and_config(source: str | None, config: Path) -> OkrConfig:
    """The loaded config, once `--source` (when given) names a CRM and the config has no problem;
    else exit 2 with the reason (what every command that reads a config and a source checks first)."""
    from flows.sources import SOURCE_NAMES
    from okr_mapping import ConfigError, load_config

    if source is not None and source not in SOURCE_NAMES:
        raise fail(f"unknown --source {source}; use {' or '.join(SOURCE_NAMES)}", 2)
    try:
        return load_config(config)
    except ConfigError as error:
        raise fail(f"the config has problems:\n{error}", 2) from None
