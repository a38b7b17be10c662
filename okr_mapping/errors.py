"""Configuration issues and the error that carries them.

A sales-ops person edits the YAML; when something is wrong they need every problem at once,
each pointing at a file, line and column, in plain words, with a "did you mean" where a typo
is likely. That is what `Issue` and `ConfigError` carry; nothing here knows about YAML itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Level = Literal["error", "warning"]
PathPart = str | int
KeyPath = tuple[PathPart, ...]


def format_path(path: Sequence[PathPart]) -> str:
    """Render a key path the way a reader finds it in the file: `objectives[0].key_results[2].target`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def did_you_mean(word: object, candidates: Iterable[str]) -> str | None:
    """The closest known name to a mistyped one, or None when nothing is close enough to help."""
    if not isinstance(word, str):
        return None
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    if matches:
        return matches[0]
    lowered = {candidate.lower(): candidate for candidate in candidates}
    return lowered.get(word.lower())


@dataclass(frozen=True)
class Issue:
    """One problem found in a config; `line`/`column` are 1-based and None when unknown."""

    level: Level
    message: str
    path: KeyPath = ()
    file: str | None = None
    line: int | None = None
    column: int | None = None
    suggestion: str | None = None

    @property
    def key_path(self) -> str:
        return format_path(self.path)

    def render(self) -> str:
        """`file:line:col: level: key.path: message — did you mean 'x'?` (parts omitted when unknown)."""
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.level}: "
        if self.path:
            text += f"{self.key_path}: "
        text += self.message
        if self.suggestion is not None:
            text += f" — did you mean '{self.suggestion}'?"
        return text

    def __str__(self) -> str:
        return self.render()


class ConfigError(Exception):
    """Raised when a config cannot be used; holds every issue found, warnings included."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues: list[Issue] = list(issues)
        super().__init__(self.__str__())

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.level == "warning"]

    def __str__(self) -> str:
        return "\n".join(issue.render() for issue in self.issues)
