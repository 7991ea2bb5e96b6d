"""Suite-wide rules: an integration test that is skipped fails the run (it must never pass silently).

The check runs where reports are collected: in the only process of a plain run, and in the controller of a
`pytest -n` run (pytest-xdist), where the workers' reports arrive with their markers as keywords.
"""

from __future__ import annotations

import pytest

_skipped_integration: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "integration" in report.keywords:
        _skipped_integration.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: its controller sees the same reports and decides
    if _skipped_integration:
        names = "\n  ".join(_skipped_integration)
        print(f"\nFAILED: {len(_skipped_integration)} integration test(s) were skipped:\n  {names}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
