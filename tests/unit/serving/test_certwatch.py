"""CertWatcher: reloads after the files change; a pair the server refuses (its reload raises) is retried until
it loads, and the watch goes on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from incluster_ipam.devcluster.pki import CertificateAuthority
from incluster_ipam.serving.certwatch import CertWatcher
from incluster_ipam.serving.tls import ServingTLS
from tests.unit.packaging.certs import serving_pair, swap_secret_volume, write_pair


class Reloads:
    """A server's reload: builds the context from the files (raising on a broken pair), then counts."""

    def __init__(self, directory: Path | None = None) -> None:
        self.count = 0
        self.directory = directory

    def __call__(self) -> None:
        if self.directory is not None:
            ServingTLS(self.directory / "tls.crt", self.directory / "tls.key")
        self.count += 1


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


def test_nothing_changed_nothing_reloaded(tmp_path: Path, ca: CertificateAuthority) -> None:
    write_pair(tmp_path, serving_pair(ca))
    reloads = Reloads()
    watcher = CertWatcher(tmp_path / "tls.crt", tmp_path / "tls.key", reloads)
    assert watcher.check() is False
    assert reloads.count == 0


def test_a_rewritten_pair_is_reloaded_once(tmp_path: Path, ca: CertificateAuthority) -> None:
    write_pair(tmp_path, serving_pair(ca))
    reloads = Reloads()
    watcher = CertWatcher(tmp_path / "tls.crt", tmp_path / "tls.key", reloads)
    write_pair(tmp_path, serving_pair(ca))
    assert watcher.check() is True
    assert watcher.check() is False
    assert (reloads.count, watcher.reloads) == (1, 1)


def test_a_secret_volume_swap_is_reloaded(tmp_path: Path, ca: CertificateAuthority) -> None:
    swap_secret_volume(tmp_path, serving_pair(ca), 1)
    reloads = Reloads()
    watcher = CertWatcher(tmp_path / "tls.crt", tmp_path / "tls.key", reloads)
    swap_secret_volume(tmp_path, serving_pair(ca), 2)
    assert watcher.check() is True
    assert reloads.count == 1


def test_a_half_written_pair_waits_until_it_matches(tmp_path: Path, ca: CertificateAuthority) -> None:
    write_pair(tmp_path, serving_pair(ca))
    reloads = Reloads(tmp_path)
    watcher = CertWatcher(tmp_path / "tls.crt", tmp_path / "tls.key", reloads)
    new = serving_pair(ca)
    (tmp_path / "tls.crt").write_bytes(new.cert_pem)  # the key is still the old one
    assert watcher.check() is False
    assert watcher.check() is False
    assert reloads.count == 0
    (tmp_path / "tls.key").write_bytes(new.key_pem)
    assert watcher.check() is True
    assert reloads.count == 1


def test_a_missing_file_is_not_reloaded(tmp_path: Path, ca: CertificateAuthority) -> None:
    write_pair(tmp_path, serving_pair(ca))
    reloads = Reloads()
    watcher = CertWatcher(tmp_path / "tls.crt", tmp_path / "tls.key", reloads)
    (tmp_path / "tls.key").unlink()
    assert watcher.check() is False
    write_pair(tmp_path, serving_pair(ca))
    assert watcher.check() is True


async def test_the_background_poll_reloads_and_survives_a_failing_reload(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    write_pair(tmp_path, serving_pair(ca))
    calls: list[int] = []

    def reload() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("server busy")

    async with CertWatcher(tmp_path / "tls.crt", tmp_path / "tls.key", reload, interval=0.01) as watcher:
        write_pair(tmp_path, serving_pair(ca))
        for _ in range(500):
            if watcher.reloads:
                break
            await asyncio.sleep(0.01)
    assert watcher.reloads == 1
    assert len(calls) == 2  # the failed call was retried on the next poll
