"""What the Dockerfile does, without a container engine (none on the build machines): build the wheel, install
it into a clean venv without pip with exactly the hash-pinned dependencies of requirements/image.lock (as the
builder stage does, same pip commands), then run the entrypoint.

The image itself (base image, USER, ENTRYPOINT, removal of pip) is checked statically in
tests/unit/packaging/test_dockerfile.py. Needs PyPI (or a configured index/cache) for the dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


def _clean_environment() -> dict[str, str]:
    """This process's environment without what would let the test's own interpreter or sources leak in."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    return env


def _run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    env = env if env is not None else _clean_environment()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.timeout(900)
def test_the_wheel_installs_into_a_clean_venv_and_runs(tmp_path: Path) -> None:
    wheels, venv, context = tmp_path / "wheels", tmp_path / "venv", tmp_path / "context"
    # The build context (.dockerignore): pyproject.toml, README.md and src/ only; built there, so the build
    # leaves nothing behind in the checkout.
    context.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements/image.lock"):
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, context / name)
    shutil.copytree(ROOT / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    # Dockerfile, builder stage: pip wheel --no-deps; venv --without-pip; the lock with --require-hashes;
    # the wheel without dependencies or an index; pip check (the lock is complete and consistent).
    _run(*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(context))
    (wheel,) = wheels.glob("incluster_ipam-*.whl")
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    lock = context / "requirements" / "image.lock"
    _run(*pip, "--python", str(python), "install", "--require-hashes", "--only-binary=:all:", "--no-deps",
         "-r", str(lock))  # fmt: skip
    _run(*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel))
    _run(*pip, "--python", str(python), "check")

    # The final stage: PATH to the venv, no source tree, not writing bytecode, as user 65532 (here: whoever).
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(tmp_path)}
    entrypoint = venv / "bin" / "incluster-ipam"
    assert "run" in _run(str(entrypoint), "--help", cwd=tmp_path, env=env)
    run_help = _run(str(entrypoint), "run", "--help", cwd=tmp_path, env=env)
    for flag in (
        "--leader-elect",
        "--webhook-cert-dir",
        "--health-probe-bind-address",
        "--diagnostics-address",
    ):
        assert flag in run_help
    # Runtime modules that --help does not import (the diagnostics server, the cert watcher) import cleanly.
    _run(
        str(python),
        "-c",
        "import incluster_ipam.serving.diagnostics, incluster_ipam.serving.certwatch",
        cwd=tmp_path,
        env=env,
    )
    installed = _run(*pip, "--python", str(python), "list", "--format=freeze")
    names = {line.split("==")[0].lower().replace("_", "-") for line in installed.splitlines()}
    assert "incluster-ipam" in names
    assert not names & {"pytest", "ruff", "mypy", "hypothesis", "pip"}, "no development tools in the image"
    assert os.access(entrypoint, os.X_OK)
