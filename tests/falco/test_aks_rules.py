"""rules/aks_audit_rules.yaml in real Falco, loaded after the official rules with
`rule_matching: all`, as the Helm values ship it: it loads with no error or warning, each
rule fires on its true positives and not on its near misses (tests/falco/aks_rule_cases.py),
AKS's own traffic raises nothing, and with Falco's default `first` the official rules would
hide the AKS ones.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from harness import falco as runner
from samples import attack_story
from tests import OFFICIAL_RULES
from tests.falco import SHIPPED_RULES
from tests.falco.aks_rule_cases import Case, cases, noise_events

WITH_AUDIT_ID = runner.with_fields("ka.cluster.name", "ka.auditid")


def aks_rule_names() -> list[str]:
    return list(rule_blocks())


def fired(falco: Path, tmp_path: Path, items: list[attack_story.Step],
          matching: str = "all", rules: list[Path] = SHIPPED_RULES) -> dict[str, set[str]]:
    """Replay the events as Event Hub bodies: rules raised, by auditID."""
    replay = tmp_path / f"bodies-{matching}-{len(rules)}.jsonl"
    replay.write_bytes(b"\n".join(attack_story.bodies(items)))
    run = runner.run(falco, runner.PluginSpec(open_params=f"file://{replay}"), rules,
                     extra={**WITH_AUDIT_ID, "rule_matching": matching})
    assert run.returncode == 0, run.stderr[-2000:]
    by_id: dict[str, set[str]] = defaultdict(set)
    for alert in run.alerts:
        by_id[str(alert["output_fields"].get("ka.auditid"))].add(alert["rule"])
    return by_id


def test_the_rules_load_after_the_official_ones_with_no_warning(falco: Path) -> None:
    results = runner.validate(falco, SHIPPED_RULES)
    assert [r["successful"] for r in results] == [True, True]
    assert [(r["errors"], r["warnings"], r["schema_warnings"]) for r in results] == \
        [([], [], [])] * 2


def rule_blocks() -> dict[str, str]:
    """Each rule's YAML text, by name."""
    text = runner.AKS_RULES.read_text()
    blocks = re.split(r"^(?=- )", text, flags=re.MULTILINE)
    return {m.group(1): b for b in blocks if (m := re.match(r"- rule: (.+)", b))}


def test_every_rule_names_its_cluster_and_is_tagged_and_documented() -> None:
    docs = (runner.AKS_RULES.parents[1] / "docs" / "aks-rules.md").read_text()
    for name, block in rule_blocks().items():
        assert "cluster=%ka.cluster.name" in block, name
        tags = re.search(r"tags: \[(.+)\]", block)
        assert tags and "aks" in tags.group(1) and re.search(r"\bT\d{4}", tags.group(1)), name
        assert re.search(r"priority: (WARNING|NOTICE|INFO)\b", block), name
        assert f"| {name} |" in docs, name
    for tunable in re.findall(r"^- (?:list|macro): ((?:user_known_)?aks_\w+)$",
                              runner.AKS_RULES.read_text(), re.MULTILINE):
        if tunable.startswith("user_known_") or tunable.endswith(
                ("_users", "_clusters", "_accounts", "_objects", "_namespaces",
                 "_resources", "_verbs", "_writer")):
            assert f"`{tunable}`" in docs, tunable


def test_every_rule_has_a_true_positive_and_a_near_miss() -> None:
    table = cases()
    for rule in aks_rule_names():
        assert {c.fires for c in table if c.rule == rule} == {True, False}, rule
    assert {c.rule for c in table} == set(aks_rule_names())


@pytest.fixture(scope="module")
def case_alerts(falco: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    return fired(falco, tmp_path_factory.mktemp("aks-rules"), [c.step for c in cases()])


@pytest.mark.parametrize("case", cases(), ids=lambda c: f"{c.rule}: {c.what}")
def test_each_rule_fires_on_its_cases_and_not_on_near_misses(
        case: Case, case_alerts: dict[str, set[str]]) -> None:
    assert (case.rule in case_alerts[case.audit_id]) == case.fires, case_alerts[case.audit_id]


def test_aks_own_traffic_no_longer_raises_the_official_rules(falco: Path,
                                                              tmp_path: Path) -> None:
    noise = noise_events()
    steps = [step for _, _, step in noise]
    official_only = fired(falco, tmp_path, steps, rules=[OFFICIAL_RULES])
    with_aks = fired(falco, tmp_path, steps)
    aks_rules = set(aks_rule_names())
    for rule, what, (_, event, _) in noise:
        assert rule in official_only[event["auditID"]], what  # the noise the overrides remove
        assert not with_aks[event["auditID"]] & ({rule} | aks_rules), what


def test_with_rule_matching_first_the_official_rules_hide_the_aks_ones(
        falco: Path, tmp_path: Path) -> None:
    local_account = next(c for c in cases() if c.rule == "AKS Local Account Used" and c.fires)
    first = fired(falco, tmp_path, [local_account.step], matching="first")
    assert first[local_account.audit_id] == {"Disallowed K8s User"}
    every = fired(falco, tmp_path, [local_account.step])
    assert every[local_account.audit_id] == {"Disallowed K8s User", "AKS Local Account Used"}
