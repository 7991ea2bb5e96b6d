"""The provider's informers and its takeover read collections in pages of `--list-page-size`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from incluster_ipam.backend import fresh_list
from incluster_ipam.kube.client import LIST_PAGE_SIZE, ObjectList
from incluster_ipam.kube.resources import CONFIGMAPS, Resource
from incluster_ipam.provider import Options, Provider
from incluster_ipam.runtime import Informer


class PageRecorder:
    """A client that answers every list with one empty page and remembers the page size asked for."""

    def __init__(self) -> None:
        self.page_sizes: list[int | None] = []

    async def snapshot(
        self, resource: Resource, namespace: str | None = None, *, page_size: int | None = 0, **_: Any
    ) -> AsyncIterator[ObjectList]:
        self.page_sizes.append(page_size)
        yield ObjectList([], "7")


def test_the_provider_informers_use_the_configured_page_size() -> None:
    provider = Provider(PageRecorder(), Options(list_page_size=321))  # type: ignore[arg-type]
    assert provider._informer(CONFIGMAPS).page_size == 321


async def test_the_takeover_lists_in_the_configured_page_size() -> None:
    client = PageRecorder()
    await fresh_list(client, CONFIGMAPS, None, deadline=float("inf"), page_size=77)  # type: ignore[arg-type]
    assert client.page_sizes == [77]


async def test_an_informer_left_to_its_default_lists_in_the_client_default() -> None:
    client = PageRecorder()
    informer = Informer.for_resource(client, CONFIGMAPS)  # type: ignore[arg-type]
    assert informer.page_size == LIST_PAGE_SIZE == 2000
