"""The shipped alerts pass `promtool check rules` and their unit tests (config/prometheus/tests), and a
broken expectation makes `promtool test rules` fail (the runner really compares)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .conftest import PROMTOOL_BUILD_TIMEOUT, copy_rule_tests, run, write_rules


@pytest.mark.timeout(PROMTOOL_BUILD_TIMEOUT + 120)
async def test_promtool_checks_the_rules_and_their_unit_tests_pass(promtool: Path, tmp_path: Path) -> None:
    rules = write_rules(tmp_path)
    checked = run(promtool, "check", "rules", rules)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    tests = copy_rule_tests(tmp_path)
    assert tests
    tested = run(promtool, "test", "rules", *tests)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.mark.timeout(PROMTOOL_BUILD_TIMEOUT + 120)
async def test_a_wrong_expectation_fails(promtool: Path, tmp_path: Path) -> None:
    write_rules(tmp_path)
    (test_file,) = (t for t in copy_rule_tests(tmp_path) if t.name == "alerts_test.yaml")
    doc = yaml.safe_load(test_file.read_text())
    first = doc["tests"][0]["alert_rule_test"][1]
    assert first["alertname"] == "InClusterIPAMPoolNearlyExhausted"
    first["exp_alerts"][0]["exp_labels"]["name"] = "roomy"
    test_file.write_text(yaml.safe_dump(doc))
    tested = run(promtool, "test", "rules", test_file)
    assert tested.returncode == 1, tested.stdout + tested.stderr
    assert 'name="roomy"' in tested.stdout + tested.stderr
