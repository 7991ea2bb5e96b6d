"""`Store`: the informer's in-memory cache, keyed `namespace/name`, with secondary indexes.

Pure data structure (no I/O, no asyncio). It holds whatever the informer's projection kept of each object,
plus each object's resourceVersion (so a relist can tell changed objects from unchanged ones even when the
projection drops metadata).

Objects are kept as compressed JSON bytes and decoded on every read; every reader gets its own copy, so
nothing can change the cache by mutating what it was given. The compression is raw deflate primed with the
first object the store encoded as a preset dictionary: the objects of one informer share nearly all their
bytes (group, kind, field names, finalizers, the pool reference), so a projected claim of about 630 bytes of
JSON keeps about 70 and an IPAddress of about 810 about 150 (`bench/memory.py`: 100,000 of each take about
a third of the room uncompressed JSON took, and a tenth of what Python dicts would). It costs about 10 us
per write and 2-5 us per read.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping

from ..kube import codec
from ..kube.resources import Obj

#: Index function: object -> the index values it is filed under (none: not indexed).
IndexFunc = Callable[[Obj], Iterable[str]]

#: Raw deflate (no header or checksum: the bytes never leave the process) with a 32 KiB window, which the
#: preset dictionary (at most that long) fits in; level 1, the fastest, compresses these objects nearly as
#: well as level 6 because the dictionary does the work.
_WBITS = -15
_LEVEL = 1
_MAX_DICTIONARY = 1 << 15


class Store:
    """Objects by key, resourceVersions by key, and `index name -> value -> keys`."""

    __slots__ = ("_bytes", "_dictionary", "_indexers", "_indices", "_items", "_versions")

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, bytes] = {}
        self._versions: dict[str, str] = {}
        self._indexers: dict[str, IndexFunc] = dict(indexers or {})
        self._indices: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}
        #: The preset dictionary: the first object encoded (fixed for the store's life).
        self._dictionary: bytes | None = None
        self._bytes = 0

    @property
    def indexers(self) -> Mapping[str, IndexFunc]:
        return self._indexers

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Register an index and file the objects already stored."""
        if name in self._indexers:
            raise ValueError(f"index {name!r} already exists")
        self._indexers[name] = func
        index: dict[str, set[str]] = {}
        self._indices[name] = index
        for key, raw in self._items.items():
            for value in func(self._decode(raw)):
                index.setdefault(value, set()).add(key)

    # ---- reads -----------------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        """A fresh copy of the object stored under `key`."""
        raw = self._items.get(key)
        return None if raw is None else self._decode(raw)

    def version(self, key: str) -> str | None:
        return self._versions.get(key)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def stored_bytes(self) -> int:
        """The bytes the stored objects take, compressed (keys, versions and indexes not counted)."""
        return self._bytes

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def keys(self) -> list[str]:
        return list(self._items)

    def values(self) -> list[Obj]:
        return [self._decode(raw) for raw in self._items.values()]

    def items(self) -> list[tuple[str, Obj]]:
        return [(key, self._decode(raw)) for key, raw in self._items.items()]

    def each(self) -> Iterator[tuple[str, Obj]]:
        """Lazily decoded `(key, object)` pairs of the keys present now; one copy alive at a time, so walking
        20,000 objects costs no more memory than holding one. Keys deleted meanwhile are skipped."""
        for key in list(self._items):
            raw = self._items.get(key)
            if raw is not None:
                yield key, self._decode(raw)

    def each_in_index(self, index: str, value: str) -> Iterator[tuple[str, Obj]]:
        """Like `each`, for the objects filed under `value` in `index`."""
        for key in self.index_keys(index, value):
            raw = self._items.get(key)
            if raw is not None:
                yield key, self._decode(raw)

    def index_keys(self, index: str, value: str) -> set[str]:
        """Keys of the objects filed under `value` in `index` (a copy)."""
        try:
            return set(self._indices[index].get(value, ()))
        except KeyError:
            raise KeyError(f"no index named {index!r}") from None

    def by_index(self, index: str, value: str) -> list[Obj]:
        """The objects filed under `value` in `index`."""
        return [self._decode(self._items[key]) for key in self.index_keys(index, value)]

    def index_values(self, index: str) -> list[str]:
        """Every value currently present in `index`."""
        return list(self._indices[index])

    # ---- writes ----------------------------------------------------------------------------------

    def upsert(self, key: str, obj: Obj, version: str = "") -> Obj | None:
        """Store `obj` under `key`, re-index it, and return what was there before."""
        encoded = self._encode(obj)  # first: a value that is not JSON changes nothing
        raw = self._items.get(key)
        old = None if raw is None else self._decode(raw)
        if old is not None:
            self._unindex(key, old)
        self._bytes += len(encoded) - (0 if raw is None else len(raw))
        self._items[key] = encoded
        self._versions[key] = version
        self._index(key, obj)
        return old

    def delete(self, key: str) -> Obj | None:
        """Remove `key` and return what was there."""
        raw = self._items.pop(key, None)
        old = None if raw is None else self._decode(raw)
        self._bytes -= 0 if raw is None else len(raw)
        self._versions.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _encode(self, obj: Obj) -> bytes:
        raw = codec.dumps(obj)
        if self._dictionary is None:
            self._dictionary = raw[:_MAX_DICTIONARY]
        compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, zdict=self._dictionary)
        return compressor.compress(raw) + compressor.flush()

    def _decode(self, data: bytes) -> Obj:
        assert self._dictionary is not None  # something was encoded
        raw = zlib.decompressobj(_WBITS, zdict=self._dictionary).decompress(data)
        obj: Obj = codec.loads(raw)
        return obj

    def _index(self, key: str, obj: Obj) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
