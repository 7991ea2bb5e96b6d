"""requirements/image.lock, what the image installs: every runtime dependency of pyproject.toml pinned to one
version that its specifier allows, each pin with sha256 hashes (pip --require-hashes refuses anything else).
That the lock is complete (no transitive dependency missing) is proven by installing it with --no-deps and
running `pip check` (tests/integration/packaging/test_image.py, the Dockerfile's own commands)."""

from __future__ import annotations

import pathlib
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[3]
LOCK = ROOT / "requirements" / "image.lock"


def _pins() -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, hashes), parsed from the lock's `name==version \\ --hash=sha256:...` entries."""
    text = LOCK.read_text().replace("\\\n", " ")
    pins: dict[str, tuple[Version, list[str]]] = {}
    for raw in text.splitlines():
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        head, *options = entry.split()
        name, sep, version = head.partition("==")
        assert sep, f"not an exact pin: {head!r}"
        hashes = [opt.removeprefix("--hash=") for opt in options]
        assert all(opt.startswith("--hash=") for opt in options), f"{head}: only --hash options expected"
        pins[canonicalize_name(name)] = (Version(version), hashes)
    return pins


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def test_every_runtime_dependency_is_pinned_within_its_specifier() -> None:
    pins = _pins()
    for requirement in _runtime_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in {LOCK.name}: run hack/lock/update.sh"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{requirement.name}=={version} in {LOCK.name} does not satisfy pyproject.toml's "
            f"{requirement.specifier}: run hack/lock/update.sh"
        )


def test_every_pin_carries_sha256_hashes() -> None:
    pins = _pins()
    assert pins, "the lock is empty"
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no hash"
        for value in hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", value), f"{name}: {value!r}"


def test_no_development_tool_is_pinned_for_the_image() -> None:
    assert not set(_pins()) & {"pytest", "ruff", "mypy", "hypothesis", "pip", "setuptools", "wheel"}
