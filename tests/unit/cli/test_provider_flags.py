"""Provider flags become `Options`: the Normal-event budget in particular."""

from __future__ import annotations

import pytest

from incluster_ipam.cli import _parser, provider_options
from incluster_ipam.provider import Options


def options_for(*flags: str) -> Options:
    return provider_options(_parser().parse_args(["run", *flags]))


def test_normal_event_budget_defaults_to_two_per_second_burst_twenty() -> None:
    """10/s with a burst of 100 was still 0.22 Event writes per claim in a burst of 2,000 on a slow day
    (3.26 writes per claim against the 3.1 of issue 18); the Ready condition tells every claim's story."""
    options = options_for()
    assert (options.normal_event_rate, options.normal_event_burst) == (2.0, 20)
    assert (Options().normal_event_rate, Options().normal_event_burst) == (2.0, 20)


@pytest.mark.parametrize(("flag", "rate"), [("unlimited", None), ("0", 0.0), ("2.5", 2.5), ("1000", 1000.0)])
def test_normal_event_rate_values(flag: str, rate: float | None) -> None:
    assert options_for("--normal-event-rate", flag, "--normal-event-burst", "7").normal_event_rate == rate


@pytest.mark.parametrize("flag", ["-1", "fast", "nan"])
def test_bad_normal_event_rate_is_refused_with_the_reason(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        options_for("--normal-event-rate", flag)
    assert "--normal-event-rate" in capsys.readouterr().err


def test_lists_are_read_in_pages_of_two_thousand_by_default() -> None:
    """bench/listcost.py at 100,000 claims: pages of 500 cost kube-apiserver and etcd 31.3 s of CPU, pages
    of 2,000 7.6 s and pages of 5,000 19.7 s (docs/performance.md, "At scale")."""
    assert options_for().list_page_size == 2000
    assert Options().list_page_size == 2000
    assert options_for("--list-page-size", "500").list_page_size == 500


@pytest.mark.parametrize("flag", ["0", "-5", "many"])
def test_bad_list_page_size_is_refused_with_the_reason(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        options_for("--list-page-size", flag)
    err = capsys.readouterr().err
    assert "--list-page-size" in err
    assert "a whole number of objects, 1 or more" in err
