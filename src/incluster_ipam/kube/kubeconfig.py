"""Several kubeconfig files merged into one view, as kubectl merges the files of $KUBECONFIG (pure).

For clusters, users and contexts the first file to define a name wins; `current-context` comes from the
first file that sets it. Each entry remembers its file and position, so relative paths resolve against
the file that wrote them and messages name the exact field (`/home/me/.kube/eks: users[0].user.exec`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: kubeconfig list -> the key of each entry's body.
SECTIONS = {"clusters": "cluster", "users": "user", "contexts": "context"}


class KubeconfigError(ValueError):
    """A kubeconfig file's structure is broken; the message names the file and field."""


@dataclass(frozen=True)
class Entry:
    """One named cluster, user or context: its body and where it was written."""

    body: Mapping[str, Any]
    file: Path
    where: str  # e.g. "users[0].user"

    @property
    def base_dir(self) -> Path:
        return self.file.parent

    def field(self, key: str) -> str:
        """`<file>: <section>[i].<kind>.<key>`, for messages."""
        return f"{self.file}: {self.where}.{key}"


@dataclass(frozen=True)
class Merged:
    files: tuple[Path, ...]
    clusters: dict[str, Entry] = field(default_factory=dict)
    users: dict[str, Entry] = field(default_factory=dict)
    contexts: dict[str, Entry] = field(default_factory=dict)
    current_context: str | None = None
    current_context_file: Path | None = None

    def section(self, name: str) -> dict[str, Entry]:
        sections: dict[str, dict[str, Entry]] = {
            "clusters": self.clusters,
            "users": self.users,
            "contexts": self.contexts,
        }
        return sections[name]


def _entries(data: Mapping[str, Any], file: Path, section: str) -> list[tuple[str, Entry]]:
    raw = data.get(section)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise KubeconfigError(f"{file}: {section}: must be a list")
    kind = SECTIONS[section]
    found = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise KubeconfigError(f"{file}: {section}[{i}]: must be a mapping with name and {kind}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise KubeconfigError(f"{file}: {section}[{i}].name: must be a non-empty string")
        body = item.get(kind)
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise KubeconfigError(f"{file}: {section}[{i}].{kind}: must be a mapping")
        found.append((name, Entry(body, file, f"{section}[{i}].{kind}")))
    return found


def merge(documents: Sequence[tuple[Path, Mapping[str, Any]]]) -> Merged:
    """Merge parsed kubeconfig documents in precedence order (first wins)."""
    merged = Merged(files=tuple(path for path, _ in documents))
    current: str | None = None
    current_file: Path | None = None
    for path, data in documents:
        for section in SECTIONS:
            target = merged.section(section)
            for name, entry in _entries(data, path, section):
                target.setdefault(name, entry)
        value = data.get("current-context")
        if current is None and value:
            if not isinstance(value, str):
                raise KubeconfigError(f"{path}: current-context: must be a string")
            current, current_file = value, path
    return Merged(merged.files, merged.clusters, merged.users, merged.contexts, current, current_file)


def precedence(kubeconfig_env: str, separator: str) -> list[Path]:
    """The files of a $KUBECONFIG value in order, empty items dropped and repeats removed."""
    seen: list[Path] = []
    for item in kubeconfig_env.split(separator):
        if item:
            path = Path(item).expanduser()
            if path not in seen:
                seen.append(path)
    return seen
