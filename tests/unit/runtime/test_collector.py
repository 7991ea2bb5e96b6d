"""The provider process collects its youngest generation less often than CPython's default."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from incluster_ipam import cli
from incluster_ipam.runtime import collector


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_the_bulk_policy_raises_only_the_youngest_threshold(thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)
    previous = collector.tune_for_bulk_reads()
    assert previous == (700, 10, 10)
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)
    assert collector.YOUNG_THRESHOLD == 10_000
    assert gc.isenabled()


def test_the_run_command_tunes_the_collector_before_it_starts(
    thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    gc.set_threshold(700, 10, 10)
    seen: list[tuple[int, int, int]] = []

    async def fake_run(args: object) -> int:
        seen.append(gc.get_threshold())
        return 0

    monkeypatch.setattr(cli, "_run", fake_run)
    assert cli.main(["run"]) == 0
    assert seen == [(collector.YOUNG_THRESHOLD, 10, 10)]
