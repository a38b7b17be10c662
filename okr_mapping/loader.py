"""Read a config file into an `OkrConfig`, keeping the line and column of every key and value.

PyYAML's composer gives a node tree with positions; we build the plain data from it ourselves
so we can remember where each key path came from (and catch duplicate keys, which PyYAML
would silently overwrite). Pydantic's error locations and our own cross-checks are then mapped
back to those positions, so every issue reads `file:line:column: ...`.

A config naming `checkins: file.yaml` (relative to the config file) has that file read too: a list
of `{kr: objective-id.kr-id, value: 42, date: 2026-11-20, note: ...}` for its manual key results,
whose problems are reported at the check-in file's own lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from okr_mapping import secrets_check
from okr_mapping.config import CheckIn, OkrConfig
from okr_mapping.errors import ConfigError, Issue, KeyPath, Level, did_you_mean
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
        try:
            return self.loader.construct_object(node, deep=True)
        except ValueError:
            # PyYAML reads 2026-13-01 as a date and fails outside its error types.
            raise yaml.MarkedYAMLError(None, None, f"'{node.value}' is not a valid date", node.start_mark) from None


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
        message, mark = _yaml_problem(exc)
        raise ConfigError(
            [
                Issue(
                    "error",
                    message,
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


def _yaml_problem(exc: yaml.MarkedYAMLError) -> tuple[str, yaml.Mark | None]:
    """A plain sentence for PyYAML's error and the mark to report it at (where the mistake likely is)."""
    context, problem = exc.context or "", exc.problem or ""
    context_mark, problem_mark = exc.context_mark, exc.problem_mark
    mark = problem_mark or context_mark
    prefix = "this is not valid YAML: "
    if "is not a valid date" in problem:
        return f"{problem} (no such month or day); write dates as YYYY-MM-DD, e.g. 2026-11-20", mark
    if not problem or "nests or repeats" in problem:
        plain = " ".join(part for part in (context, problem) if part) or "unreadable YAML"
        return f"this is not valid YAML ({plain})", mark
    if "'\\t'" in problem:
        return prefix + "a tab is used here; indent with spaces only", mark
    if "undefined alias" in problem:
        name = problem.split("'")[1] if problem.count("'") >= 2 else "name"
        return prefix + f"'*{name}' refers to an anchor '&{name}' that is not defined above it", mark
    if "that cannot start any token" in problem:
        char = problem.split("'")[1] if problem.count("'") >= 2 else "this character"
        return prefix + f"a value cannot start with '{char}'; put the value in quotes", mark
    if "quoted scalar" in context and context_mark is not None:
        # PyYAML notices at the end of the file; the mistake is the quote that was opened here.
        return prefix + "the quote opened here is never closed; end the text with the same quote", context_mark
    if "simple key" in context and context_mark is not None:
        return prefix + "expected 'key: value' on this line; is the space after ':' missing?", context_mark
    if "flow mapping" in context or "flow sequence" in context:
        opener, closer = ("{", "}") if "mapping" in context else ("[", "]")
        where = f" on line {context_mark.line + 1}" if context_mark is not None else ""
        return (
            prefix + f"the '{opener}' opened{where} is not closed with '{closer}' before this point, "
            f"or a ',' is missing between its entries",
            mark,
        )
    if "mapping values are not allowed" in problem:
        return (
            prefix + "a ':' is not allowed here; either this line is indented deeper than the key above it, "
            "or the value contains ': ' and needs quotes",
            mark,
        )
    if "expected <block end>" in problem:
        return prefix + "this line does not line up with the lines above it; check its indentation", mark
    return f"this is not valid YAML ({' '.join(part for part in (context, problem) if part)})", mark


def parse_config(text: str, file: str = "<config>", base_dir: Path | None = None) -> OkrConfig:
    """Validate config text; raises ConfigError listing every error (warnings ride along on the result).

    `base_dir` is where a relative `checkins:` path starts (default: the directory of `file`).
    """
    data, source_map, issues = parse_yaml(text, file)
    secret_issues, secrets = secrets_check.secret_issues(data, source_map)
    if not isinstance(data, dict):
        raise ConfigError(
            [
                source_map.issue(
                    "error", (), "the file must be a mapping of settings (metrics:, objectives:, ...)"
                ),
                *secret_issues,
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
    checkin_issues: list[Issue] = []
    if config is not None:
        folder = base_dir if base_dir is not None else Path(file).parent
        checkin_issues = _load_checkins(config, source_map, folder)
    # The config's issues first, then the check-in file's, each in file order; none but the secrets' own
    # showing a secret.
    config_issues = secrets_check.without_secrets(issues, secrets) + secret_issues
    ordered = _sorted(config_issues) + _sorted(secrets_check.without_secrets(checkin_issues, secrets))
    if any(issue.level == "error" for issue in ordered):
        raise ConfigError(ordered)
    assert config is not None
    config._warnings = ordered
    config._source_map = source_map
    return config


_CHECKIN_KEYS = ("kr", "value", "date", "note")


def _load_checkins(config: OkrConfig, source_map: SourceMap, folder: Path) -> list[Issue]:
    """Read the config's check-in file into `config._checkins`; the issues found on the way."""
    kinds = {
        f"{objective.id}.{kr.id}": (kr.type, index, kr_index)
        for index, objective in enumerate(config.objectives)
        for kr_index, kr in enumerate(objective.key_results)
    }
    manual = sorted(key for key, (kind, _i, _k) in kinds.items() if kind == "manual")
    if config.checkins is None:
        return [
            source_map.issue(
                "warning",
                ("objectives", kinds[key][1], "key_results", kinds[key][2], "type"),
                "a manual key result needs check-ins; add checkins: checkins.yaml to the config "
                "(until then its value is 0)",
            )
            for key in manual
        ]
    path = folder / config.checkins
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [source_map.issue("error", ("checkins",), f"the check-in file '{file}' does not exist")]
    except (OSError, UnicodeDecodeError) as exc:
        return [source_map.issue("error", ("checkins",), f"the check-in file '{file}' cannot be read ({exc})")]
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        return []  # no check-ins yet
    try:
        data, checkin_map, issues = parse_yaml(text, file)
    except ConfigError as exc:
        return exc.issues
    secret_issues, _texts = secrets_check.secret_issues(data, checkin_map)
    if secret_issues:
        return secret_issues  # the check-in file is not read further: other messages could quote the secret
    if not isinstance(data, list):
        return [checkin_map.issue("error", (), "a check-in file is a list of {kr: ..., value: ..., date: ...}")]
    by_kr: dict[str, list[CheckIn]] = {}
    seen: set[tuple[str, object]] = set()
    for index, raw in enumerate(data):
        try:
            checkin = CheckIn.model_validate(raw)
        except ValidationError as exc:
            found = [_checkin_issue(checkin_map, index, error, raw) for error in exc.errors()]
            issues.extend(_drop_redundant_missing(found))
            continue
        kind = kinds.get(checkin.kr, (None, 0, 0))[0]
        if kind is None:
            issues.append(
                checkin_map.issue(
                    "error",
                    (index, "kr"),
                    f"unknown key result '{checkin.kr}'; name a manual key result as objective-id.kr-id"
                    + (f" ({', '.join(manual)})" if manual else ""),
                    did_you_mean(checkin.kr, manual or kinds),
                )
            )
        elif kind != "manual":
            issues.append(
                checkin_map.issue(
                    "error",
                    (index, "kr"),
                    f"'{checkin.kr}' is {'an' if kind[:1] in 'aeiou' else 'a'} {kind} key result; "
                    "only manual key results take check-ins",
                )
            )
        elif (checkin.kr, checkin.date) in seen:
            issues.append(
                checkin_map.issue(
                    "error",
                    (index, "date"),
                    f"'{checkin.kr}' has two check-ins on {checkin.date}; keep one",
                )
            )
        else:
            seen.add((checkin.kr, checkin.date))
            by_kr.setdefault(checkin.kr, []).append(checkin)
    config._checkins = by_kr
    return issues


def _checkin_issue(checkin_map: SourceMap, index: int, error: Any, raw: Any) -> Issue:
    loc = tuple(part for part in error["loc"] if isinstance(part, str))
    key = loc[0] if loc else None
    if error["type"] == "extra_forbidden" and key is not None:
        return checkin_map.issue(
            "error",
            (index, key),
            f"unknown key '{key}'; a check-in has {', '.join(_CHECKIN_KEYS)}",
            did_you_mean(key, _CHECKIN_KEYS),
            on_key=True,
        )
    if error["type"] == "missing" and key is not None:
        return checkin_map.issue("error", (index, key), f"'{key}' is required here")
    if key is None:
        return checkin_map.issue(
            "error", (index,), "a check-in is a mapping like {kr: objective-id.kr-id, value: 42, date: 2026-11-20}"
        )
    path, message, suggestion, _on_key = issue_parts(error, raw)
    return checkin_map.issue("error", (index, *path), message, suggestion)


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
