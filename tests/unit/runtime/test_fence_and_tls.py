"""Write fencing by a lease's validity, the elector's failure handling of its leading callback, and the TLS
settings shared by the provider's servers."""

from __future__ import annotations

import asyncio
import math
import ssl
from pathlib import Path

import pytest

from incluster_ipam.runtime import (
    LeaderElectionConfig,
    LeaderElector,
    LeaseFence,
    NotLeading,
    Unfenced,
    send_within,
)
from incluster_ipam.serving.tls import ServingTLS, cipher_list, server_context
from tests.unit.packaging.certs import serving_pair, write_pair
from tests.unit.runtime.test_leaderelection import FAST, FakeLeases


class Deadline:
    def __init__(self, valid_until: float) -> None:
        self.valid_until = valid_until


async def test_a_write_must_leave_within_the_leadership_left() -> None:
    assert send_within(Unfenced()) is None
    now = asyncio.get_running_loop().time()
    assert 4.0 < (send_within(LeaseFence(Deadline(now + 5.0))) or 0) <= 5.0
    with pytest.raises(NotLeading):
        send_within(LeaseFence(Deadline(now - 0.001)))
    with pytest.raises(NotLeading):
        send_within(LeaseFence(Deadline(-math.inf)))


async def test_valid_until_follows_renewals_and_ends_with_leadership() -> None:
    api = FakeLeases()
    config = LeaderElectionConfig(name="lock", namespace="ns", identity="a", **FAST)
    elector = LeaderElector(api.client("a"), config)  # type: ignore[arg-type]
    assert elector.valid_until == -math.inf
    task = asyncio.create_task(elector.run())
    await asyncio.wait_for(elector.wait_leading(), 2)
    loop = asyncio.get_running_loop()
    assert loop.time() < elector.valid_until <= loop.time() + FAST["renew_deadline"]
    api.down.add("a")  # renewals fail from here: the validity is not extended, then ends
    await asyncio.wait_for(task, 2)
    assert elector.valid_until == -math.inf
    assert not elector.is_leader


async def test_a_failing_start_of_leading_gives_the_lease_up() -> None:
    """Finding 2: work started on leading that fails must not leave a leader that only renews."""
    api = FakeLeases()
    config = LeaderElectionConfig(name="lock", namespace="ns", identity="a", **FAST)

    async def take_over() -> None:
        raise RuntimeError("the takeover list failed")

    stopped: list[str] = []
    elector = LeaderElector(
        api.client("a"),  # type: ignore[arg-type]
        config,
        on_started_leading=take_over,
        on_stopped_leading=lambda: stopped.append("a"),
    )
    await asyncio.wait_for(elector.run(), 2)  # it ends by itself
    assert stopped == ["a"]
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == ""  # released: a standby takes over at once


def test_cipher_suites_by_go_name() -> None:
    assert cipher_list(None).split(":") == [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
    chosen = cipher_list(["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"])
    assert chosen == "ECDHE-RSA-AES256-GCM-SHA384"
    with pytest.raises(ValueError, match="TLS_RSA_WITH_AES_128_CBC_SHA"):
        cipher_list(["TLS_RSA_WITH_AES_128_CBC_SHA"])


def test_server_contexts_refuse_old_tls_and_reload_whole_pairs(tmp_path: Path) -> None:
    first, second = serving_pair(), serving_pair()
    write_pair(tmp_path, first)
    with pytest.raises(ValueError, match=r"1\.2"):
        server_context(tmp_path / "tls.crt", tmp_path / "tls.key", ssl.TLSVersion.TLSv1_1)
    tls = ServingTLS(tmp_path / "tls.crt", tmp_path / "tls.key")
    served = tls._current
    (tmp_path / "tls.crt").write_bytes(second.cert_pem)  # the key is not rotated yet
    with pytest.raises(ssl.SSLError):
        tls.reload()
    assert tls._current is served  # the served pair is untouched
    (tmp_path / "tls.key").write_bytes(second.key_pem)
    tls.reload()
    assert tls._current is not served
