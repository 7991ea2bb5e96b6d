"""Summarise a py-spy `--format raw` profile (collapsed stacks: `frame;frame;...;leaf count` per line)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short(frame: str) -> str:
    """`func (path/to/pkg/mod.py:123)` -> `func (pkg/mod.py)`: one entry per function, not per line."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "incluster_ipam/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "incluster_ipam/":
                path = "incluster_ipam/" + path
            break
    return f"{match.group('func')} ({path})"


def summarise(path: Path, top: int = 25) -> dict[str, object]:
    """Total samples, and the top functions by own (self) and inclusive samples, as percentages."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        # The first frame is py-spy's thread label ("process ...", "thread ..."), not code.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))] or frames
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def table(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)] if total else []

    return {"samples": total, "self": table(own), "inclusive": table(inclusive)}
