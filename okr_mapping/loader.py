"""Read a config file into an `OkrConfig`, keeping the line and column of every key and value.

PyYAML's composer gives a node tree with positions; we build the plain data from it ourselves
so we can remember where each key path came from (and catch duplicate keys, which PyYAML
would silently overwrite). Pydantic's error locations and our own cross-checks are then mapped
back to those positions, so every issue reads `file:line:column: ...`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from okr_mapping.config import OkrConfig
from okr_mapping.errors import ConfigError, Issue, KeyPath, Level
from okr_mapping.pydantic_errors import issue_parts
from okr_mapping.validate import ConfigParts, check_config

MAX_DEPTH = 50
MAX_NODES = 200_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Position:
    """1-based line and column."""

    line: int
    column: int


@dataclass
class SourceMap:
    """Where each key path sits in the file: the key itself and its value."""

    file: str
    keys: dict[KeyPath, Position] = field(default_factory=dict)
    values: dict[KeyPath, Position] = field(default_factory=dict)

    def locate(self, path: KeyPath, prefer_key: bool = False) -> Position | None:
        """Position of `path`, or of its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            found = first.get(prefix) or second.get(prefix)
            if found is not None:
                return found
        return None

    def issue(
        self, level: Level, path: KeyPath, message: str, suggestion: str | None = None, on_key: bool = False
    ) -> Issue:
        position = self.locate(path, prefer_key=on_key)
        return Issue(
            level=level,
            message=message,
            path=path,
            file=self.file,
            line=position.line if position else None,
            column=position.column if position else None,
            suggestion=suggestion,
        )


def _position(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turns composed YAML nodes into plain data while filling a SourceMap."""

    def __init__(self, loader: yaml.SafeLoader, source_map: SourceMap) -> None:
        self.loader = loader
        self.map = source_map
        self.issues: list[Issue] = []
        self.built = 0
        self.merged: dict[int, int] = {}  # mapping node id -> how many leading pairs came from `<<:` merges

    def build(self, node: yaml.Node, path: KeyPath, depth: int = 0) -> Any:
        self.map.values.setdefault(path, _position(node))
        self.built += 1
        if depth > MAX_DEPTH or self.built > MAX_NODES:
            # Guards against self-referencing anchors and alias bombs ("billion laughs").
            problem = "the file nests or repeats (&anchors / *aliases) too much"
            raise yaml.MarkedYAMLError("while reading the config", None, problem, node.start_mark)
        if isinstance(node, yaml.MappingNode):
            if id(node) not in self.merged:
                # flatten_mapping resolves `<<: *anchor` merges, putting merged pairs first.
                own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
                self.loader.flatten_mapping(node)
                self.merged[id(node)] = len(node.value) - own
            first_own = self.merged[id(node)]
            result: dict[str, Any] = {}
            own_keys: set[str] = set()
            for index, (key_node, value_node) in enumerate(node.value):
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    key = str(key)
                child = (*path, key)
                if index >= first_own:
                    if key in own_keys:
                        self.issues.append(
                            Issue(
                                "error",
                                f"'{key}' appears twice here; the second one would silently win",
                                child,
                                self.map.file,
                                key_node.start_mark.line + 1,
                                key_node.start_mark.column + 1,
                            )
                        )
                    own_keys.add(key)
                    self.map.keys[child] = _position(key_node)
                    self.map.values[child] = _position(value_node)
                result[key] = self.build(value_node, child, depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str = "<config>") -> tuple[Any, SourceMap, list[Issue]]:
    """Plain data, its source map, and YAML-level issues (duplicate keys); raises ConfigError on bad YAML."""
    source_map = SourceMap(file)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError([Issue("error", "the file is empty; it needs at least objectives", file=file)])
        builder = _Builder(loader, source_map)
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(part for part in (exc.context, exc.problem) if part) or "unreadable YAML"
        raise ConfigError(
            [
                Issue(
                    "error",
                    f"this is not valid YAML ({problem})",
                    file=file,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Issue("error", f"this is not valid YAML ({exc})", file=file)]) from None
    finally:
        loader.dispose()
    return data, source_map, builder.issues


def parse_config(text: str, file: str = "<config>") -> OkrConfig:
    """Validate config text; raises ConfigError listing every error (warnings ride along on the result)."""
    data, source_map, issues = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise ConfigError(
            [
                source_map.issue(
                    "error", (), "the file must be a mapping of settings (metrics:, objectives:, ...)"
                )
            ]
        )
    config: OkrConfig | None = None
    schema_issues: list[Issue] = []
    try:
        config = OkrConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            path, message, suggestion, on_key = issue_parts(error, data)
            schema_issues.append(source_map.issue("error", path, message, suggestion, on_key))
    issues.extend(_drop_redundant_missing(schema_issues))
    parts = ConfigParts.of(config) if config is not None else ConfigParts.salvage(data)
    for found in check_config(parts):
        issues.append(
            source_map.issue(found.level, found.path, found.message, found.suggestion, found.on_key)
        )
    if any(issue.level == "error" for issue in issues):
        raise ConfigError(_sorted(issues))
    assert config is not None
    config._warnings = _sorted(issues)
    return config


def load_config(path: str | Path) -> OkrConfig:
    """Load and validate a config file; raises ConfigError for a missing file, bad YAML or any error."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Issue("error", "the config file does not exist", file=file)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Issue("error", f"the config file cannot be read ({exc})", file=file)]) from None
    return parse_config(text, file)


def check_file(path: str | Path) -> list[Issue]:
    """Every issue in a config file, errors and warnings, without raising (for a `validate` command)."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        return exc.issues
    return config.warnings


def _drop_redundant_missing(issues: list[Issue]) -> list[Issue]:
    """Skip "'change' is required" when a sibling "unknown 'chnge' — did you mean 'change'" says it better."""
    suggested = {(*issue.path[:-1], issue.suggestion) for issue in issues if issue.suggestion is not None}
    return [
        issue
        for issue in issues
        if not (issue.message.endswith("is required here") and issue.path in suggested)
    ]


def _sorted(issues: list[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda issue: (issue.line or 0, issue.column or 0))
