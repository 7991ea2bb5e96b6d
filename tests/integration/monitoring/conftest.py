"""promtool, built from the Prometheus Go module by hack/promtool/build.sh (cached outside the repo; a cold
build takes minutes, so the timeout is generous), and a runner for `promtool test rules` over the shipped
PrometheusRule. A failed build fails the tests that need it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.monitoring.promql import ROOT, RULE_TESTS, rule_spec

PROMTOOL_BUILD_TIMEOUT = 1800.0


def _build() -> Path:
    script = ROOT / "hack" / "promtool" / "build.sh"
    done = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=PROMTOOL_BUILD_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-3000:]}"
    binary = Path(done.stdout.strip().splitlines()[-1])
    assert binary.is_file(), f"{script} printed {binary}, which is not a file"
    return binary


@pytest.fixture(scope="session")
async def promtool() -> Path:
    return await asyncio.to_thread(_build)


def write_rules(directory: Path) -> Path:
    """The PrometheusRule's `spec` as a plain rule file, `rules.yaml` in `directory` (where the unit-test
    files expect it)."""
    rules = directory / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule_spec(), sort_keys=False))
    return rules


def copy_rule_tests(directory: Path) -> list[Path]:
    copies = []
    for source in sorted(RULE_TESTS.glob("*.yaml")):
        copies.append(Path(shutil.copy(source, directory / source.name)))
    return copies


def run(promtool: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
