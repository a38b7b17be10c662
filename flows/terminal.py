"""The command line's two consoles and its one way to fail with a message and an exit code."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

# Wide enough for the KR table even when the output is a pipe or a CI log.
console = Console(width=None if Console().is_terminal else 110)
errors = Console(stderr=True)


def fail(message: str, code: int) -> typer.Exit:
    """Print `message` on stderr and return the Exit to raise (1 failure, 2 bad input or config)."""
    errors.print(f"[red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)
