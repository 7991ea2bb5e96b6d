"""Suite-wide rules: an integration test that is skipped fails the run (it must never pass silently)."""

from __future__ import annotations

import pytest

_skipped_integration: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("integration") is not None:
        _skipped_integration.append(item.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_integration:
        names = "\n  ".join(_skipped_integration)
        print(f"\nFAILED: {len(_skipped_integration)} integration test(s) were skipped:\n  {names}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
