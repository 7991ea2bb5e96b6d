"""The krew manifest and the `kubectl-ipam` executable `pip install` provides."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import yaml

from incluster_ipam.kubectl import main

ROOT = Path(__file__).resolve().parents[3]


def test_the_krew_manifest_describes_kubectl_ipam() -> None:
    manifest = yaml.safe_load((ROOT / "plugins" / "krew" / "ipam.yaml").read_text())
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin"
    assert manifest["metadata"]["name"] == "ipam"  # kubectl ipam -> kubectl-ipam
    spec = manifest["spec"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", spec["version"])
    assert len(spec["shortDescription"]) <= 60
    platforms = {
        (p["selector"]["matchLabels"]["os"], p["selector"]["matchLabels"]["arch"]) for p in spec["platforms"]
    }
    assert platforms == {("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64")}
    for platform in spec["platforms"]:
        labels = platform["selector"]["matchLabels"]
        assert platform["bin"] == "kubectl-ipam"
        assert {"from": "kubectl-ipam", "to": "."} in platform["files"]
        assert platform["uri"].endswith(
            f"/{spec['version']}/kubectl-ipam_{spec['version']}_{labels['os']}_{labels['arch']}.tar.gz"
        )
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"])


def test_pip_install_puts_kubectl_ipam_on_path() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-ipam"] == "incluster_ipam.kubectl:main"
    (installed,) = [e for e in entry_points(group="console_scripts") if e.name == "kubectl-ipam"]
    assert installed.load() is main
