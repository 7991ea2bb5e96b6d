"""The suite's own rule (tests/conftest.py): a skipped integration test fails the run, also under xdist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

RULES = Path(__file__).resolve().parents[1] / "conftest.py"
SKIPPING = """
import pytest

@pytest.mark.integration
def test_needs_a_component():
    pytest.skip("the component did not start")

def test_plain():
    pass
"""


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="plain"),
        pytest.param(
            ["-n", "2", "-p", "xdist"],
            id="xdist",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed"
            ),
        ),
    ],
)
def test_a_skipped_integration_test_fails_the_run(pytester: pytest.Pytester, args: list[str]) -> None:
    pytester.makeconftest(RULES.read_text())
    pytester.makeini("[pytest]\nmarkers =\n    integration: x\n")
    pytester.makepyfile(test_skipping=SKIPPING)
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FAILED: 1 integration test(s) were skipped:*", "*test_needs_a_component*"])


def test_a_plain_skip_does_not_fail_the_run(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RULES.read_text())
    pytester.makeini("[pytest]\nmarkers =\n    integration: x\n")
    pytester.makepyfile(test_plain="import pytest\n\ndef test_x():\n    pytest.skip('not here')\n")
    assert pytester.runpytest_subprocess().ret == pytest.ExitCode.OK
