"""The suite's own rule (tests/conftest.py): a skipped integration test fails the run, also under xdist."""

from __future__ import annotations

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
        pytest.param(["-n", "2"], id="xdist"),
    ],
)
def test_a_skipped_integration_test_fails_the_run(pytester: pytest.Pytester, args: list[str]) -> None:
    pytester.makeconftest(RULES.read_text())
    pytester.makeini("[pytest]\nmarkers =\n    integration: x\n")
    pytester.makepyfile(test_skipping=SKIPPING)
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FAILED: 1 integration test(s) were skipped:*", "*test_needs_a_component*"])


def test_figures_printed_by_passing_integration_tests_reach_the_summary_under_xdist(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(RULES.read_text())
    pytester.makeini("[pytest]\nmarkers =\n    integration: x\n")
    pytester.makepyfile(
        test_figures=(
            "import pytest\n\n@pytest.mark.integration\ndef test_measures():\n    print('took 1.5 s')\n\n"
            "def test_unit():\n    print('not repeated')\n"
        )
    )
    result = pytester.runpytest_subprocess("-n", "2")
    assert result.ret == pytest.ExitCode.OK
    summary = ["*figures printed by integration and e2e tests*", "*test_measures", "*took 1.5 s"]
    result.stdout.fnmatch_lines(summary)
    assert "not repeated" not in result.stdout.str()


def test_a_plain_skip_does_not_fail_the_run(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RULES.read_text())
    pytester.makeini("[pytest]\nmarkers =\n    integration: x\n")
    pytester.makepyfile(test_plain="import pytest\n\ndef test_x():\n    pytest.skip('not here')\n")
    assert pytester.runpytest_subprocess().ret == pytest.ExitCode.OK
