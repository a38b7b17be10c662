"""A corpus of the mistakes people really make in a rules file, each rejected at the right place.

Every `invalid/*.yaml` starts with one or more comments naming what must be reported:

    # expect: LINE:COLUMN substring of the message      (COLUMN optional)
    # expect: checkins/x.yaml:LINE:COLUMN substring     (an issue in another file, relative to invalid/)
    # expect: substring                                  (an issue with no line, e.g. an empty file)

Each file must be rejected with a ConfigError (never another exception) holding an error that
matches every expectation, and `okr-sync validate` must exit 2 on it without a traceback.
`invalid/checkins/` holds the check-in files some of the configs point at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from okr_mapping import ConfigError, Issue, load_config

CORPUS = Path(__file__).resolve().parent / "invalid"
FILES = sorted(CORPUS.glob("*.yaml"))
_EXPECT = re.compile(
    r"^#\s*expect:\s*"
    r"(?:(?:(?P<file>[\w./-]+\.ya?ml):)?(?P<line>\d+)(?::(?P<column>\d+))?\s+)?"  # [file:]line[:column]
    r"(?P<text>.+?)\s*$"
)

runner = CliRunner()


@dataclass(frozen=True)
class Expectation:
    file: Path
    line: int | None
    column: int | None
    text: str

    def matches(self, issue: Issue) -> bool:
        return (
            issue.level == "error"
            and issue.file is not None
            and Path(issue.file).resolve() == self.file.resolve()
            and issue.line == self.line
            and (self.column is None or issue.column == self.column)
            and self.text in issue.message
        )

    def __str__(self) -> str:
        where = f"{self.file.name}:{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where} {self.text!r}"


def expectations(path: Path) -> list[Expectation]:
    found = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.startswith("#"):
            continue
        match = _EXPECT.match(raw)
        if match is None:
            assert "expect" not in raw, f"{path.name}: malformed expectation {raw!r}"
            continue
        line, column = match.group("line"), match.group("column")
        found.append(
            Expectation(
                CORPUS / match.group("file") if match.group("file") else path,
                int(line) if line else None,
                int(column) if column else None,
                match.group("text"),
            )
        )
    return found


def test_the_corpus_covers_at_least_40_mistakes() -> None:
    assert len(FILES) >= 40
    assert all(expectations(path) for path in FILES), [p.name for p in FILES if not expectations(p)]


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_mistake_is_reported_at_its_line(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    errors = caught.value.errors
    assert errors, "a rejected config must hold at least one error"
    report = "\n".join(issue.render() for issue in caught.value.issues)
    for expected in expectations(path):
        assert any(expected.matches(issue) for issue in errors), f"no error matches {expected}; got:\n{report}"
    if all(expected.line is not None for expected in expectations(path)):
        assert all(issue.line is not None for issue in errors), f"an error without a line:\n{report}"


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_validate_command_exits_2_without_traceback(path: Path) -> None:
    result = runner.invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "the config has problems" in result.output
