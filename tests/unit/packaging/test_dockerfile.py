"""The Dockerfile's shape (no container engine here: tests/integration/packaging/test_image.py runs its
install steps for real). Multi-stage, wheel built in the builder, final stage non-root without build tools."""

from __future__ import annotations

import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def test_two_stages_on_the_same_slim_python_base() -> None:
    builder, final = _stages()
    arg = next(
        rest for keyword, rest in _instructions() if keyword == "ARG" and rest.startswith("PYTHON_IMAGE=")
    )
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.\d+-slim-\w+", arg)
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")


def test_the_builder_makes_a_wheel_and_a_venv_from_binary_wheels_only() -> None:
    builder, _ = _stages()
    run = " ".join(rest for keyword, rest in builder if keyword == "RUN")
    assert "pip wheel --no-deps" in run
    assert "venv --without-pip /opt/venv" in run
    assert "--only-binary=:all:" in run


def test_the_builder_installs_only_what_the_lock_pins_with_hashes() -> None:
    builder, _ = _stages()
    assert ("COPY", "requirements/image.lock ./requirements/") in builder
    run = " ".join(" ".join(rest.split()) for keyword, rest in builder if keyword == "RUN")
    assert "--require-hashes --only-binary=:all: --no-deps -r requirements/image.lock" in run
    # The wheel itself adds nothing: no dependency resolution, no index.
    assert "install --no-deps --no-index /wheels/*.whl" in run
    assert "pip --python /opt/venv/bin/python check" in run


def test_the_final_stage_runs_incluster_ipam_as_65532_without_build_tools() -> None:
    _, final = _stages()
    keywords = [keyword for keyword, _ in final]
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in final
    assert not any("pip install" in rest or "apt-get" in rest for keyword, rest in final if keyword == "RUN")
    removal = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "site-packages/pip*" in removal
    assert "bin/pip*" in removal
    user = [rest for keyword, rest in final if keyword == "USER"]
    assert user == ["65532:65532"]
    assert keywords[-1] == "ENTRYPOINT"
    assert json.loads(final[-1][1]) == ["incluster-ipam", "run"]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k in ("RUN", "COPY"))


def test_the_build_context_is_only_the_package_sources() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    assert {p for p in patterns if p.startswith("!")} == {
        "!pyproject.toml",
        "!README.md",
        "!requirements/image.lock",
        "!src",
    }
