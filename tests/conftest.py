"""Suite-wide rules, applied where test reports are collected (the only process of a plain run, or the
controller of a `pytest -n` run, where the workers' reports arrive with their markers as keywords):

- an integration test that is skipped fails the run (it must never pass silently);
- what integration and end-to-end tests print when they pass (their measured figures) is repeated in the
  terminal summary, since the workers' output is not shown otherwise.
"""

from __future__ import annotations

import pytest

_skipped_integration: list[str] = []
_printed: list[tuple[str, str]] = []
PRINTED_LINES = 12  # per test


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "integration" not in report.keywords:
        return
    if report.skipped:
        _skipped_integration.append(report.nodeid)
    elif report.when == "call" and report.passed and report.capstdout.strip():
        _printed.append((report.nodeid, report.capstdout.strip()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _printed:
        return
    terminalreporter.section("figures printed by integration and e2e tests")
    for nodeid, text in sorted(_printed):
        lines = text.splitlines()[-PRINTED_LINES:]
        terminalreporter.write_line(nodeid)
        for line in lines:
            terminalreporter.write_line(f"    {line}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: its controller sees the same reports and decides
    if _skipped_integration:
        names = "\n  ".join(_skipped_integration)
        print(f"\nFAILED: {len(_skipped_integration)} integration test(s) were skipped:\n  {names}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
