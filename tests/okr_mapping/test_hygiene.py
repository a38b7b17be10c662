"""OKR-practice warnings of `validate`: each at the file and line of what it is about, never an error."""

from __future__ import annotations

import os
from pathlib import Path

from okr_mapping import load_config
from okr_mapping.hygiene import practice_warnings
from tests.flows.conftest import okr_sync

METRIC = """metrics:
  won: {entity: deal, measure: sum(amount), where: {is_won: true}, time: close_date}
objectives:
"""


def objective(ident: str, owner: str | None = None, period: str = "2026-Q4", krs: int = 2,
              parent: str | None = None, kr: str = "{id: k%d, metric: won, target: 100}") -> str:
    lines = [f"  - id: {ident}", f"    title: Objective {ident}", f"    period: {period}"]
    lines += [f"    owner: {owner}"] if owner else []
    lines += [f"    parent: {parent}"] if parent else []
    lines += ["    key_results:"] + [f"      - {kr % n}" for n in range(krs)]
    return "\n".join(lines) + "\n"


def warnings_of(tmp_path: Path, text: str) -> list[tuple[int | None, str]]:
    path = tmp_path / "okrs.yaml"
    path.write_text(text, encoding="utf-8")
    return [(issue.line, issue.message) for issue in practice_warnings(load_config(path))]


def test_an_owner_with_seven_objectives_is_warned_at_each_of_them(tmp_path: Path) -> None:
    text = METRIC + "".join(objective(f"o{n}", owner="ann@acme.com") for n in range(7))
    text += "".join(objective(f"b{n}", owner="bob@acme.com") for n in range(4))  # four: fine
    found = warnings_of(tmp_path, text)
    owner_lines = [number for number, line in enumerate(text.splitlines(), 1) if "owner: ann@acme.com" in line]
    assert [line for line, _ in found] == owner_lines and len(owner_lines) == 7
    assert all("ann@acme.com owns 7 objectives for period 2026-Q4 (o0, o1, o2, o3, o4, o5, o6)" in message
               for _, message in found)


def test_few_objectives_per_owner_and_period_are_counted_per_period(tmp_path: Path) -> None:
    text = METRIC + "".join(objective(f"q4-{n}", owner="ann@acme.com") for n in range(3))
    text += "".join(objective(f"q1-{n}", owner="ann@acme.com", period="2027-Q1") for n in range(2))
    found = warnings_of(tmp_path, text)
    assert len(found) == 2 and all("owns 2 objectives for period 2027-Q1" in message for _, message in found)


def test_key_results_per_objective_outside_two_to_five(tmp_path: Path) -> None:
    text = METRIC + objective("one", krs=1) + objective("six", krs=6) + objective("three", krs=3)
    found = warnings_of(tmp_path, text)
    assert [message.split(";")[0] for _, message in found] == [
        "objective 'one' has 1 key result", "objective 'six' has 6 key results"]


def test_a_target_equal_to_its_baseline_and_a_child_in_another_period(tmp_path: Path) -> None:
    flat = "{id: k%d, metric: won, baseline: 500, target: 500}"
    text = METRIC + objective("parent") + objective("flat", kr=flat) + objective("child", period="2026-Q3",
                                                                                 parent="parent")
    text += objective("relative", period="current", parent="parent")  # may be the same quarter: no warning
    found = [message for _, message in warnings_of(tmp_path, text)]
    assert sum("starts at its target (500), so it is achieved on day one" in message for message in found) == 2
    assert [message for message in found if "rolls up" in message] == [
        "objective 'child' is for period 2026-Q3 but rolls up into 'parent', which is for 2026-Q4; "
        "give both the same period"]


def test_the_examples_follow_the_practice_and_validate_prints_warnings_with_exit_0(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "config" / "examples"
    for name in ("demo.yaml", "sales-okrs.yaml", "multi-org.yaml"):
        assert practice_warnings(load_config(examples / name)) == [], name
    path = tmp_path / "okrs.yaml"
    path.write_text(METRIC + objective("one", krs=1), encoding="utf-8")
    done = okr_sync(dict(os.environ), "validate", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert f"{path}:" in done.stderr and "has 1 key result" in done.stderr
    assert "OK (1 objective, 1 key result, 1 warning)" in " ".join(done.stdout.split())
