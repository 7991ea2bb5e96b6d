"""The kube-controller-manager command line the local control plane runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from incluster_ipam.devcluster.controllermanager import (
    DEFAULT_CONTROLLERS,
    ControllerManagerFiles,
    controller_manager_argv,
)

FILES = ControllerManagerFiles(
    kubeconfig=Path("/w/cm.kubeconfig"),
    service_account_key=Path("/w/pki/sa.key"),
    root_ca=Path("/w/pki/ca.crt"),
    cert_dir=Path("/w/cm-certs"),
)


def flags(argv: list[str]) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in argv[1:])


def test_loopback_secure_port_own_kubeconfig_no_leader_election() -> None:
    argv = controller_manager_argv(Path("/bin/kcm"), FILES, host="127.0.0.1", port=40123)
    assert argv[0] == "/bin/kcm"
    got = flags(argv)
    assert got["bind-address"] == "127.0.0.1"
    assert got["secure-port"] == "40123"
    assert got["kubeconfig"] == got["authentication-kubeconfig"] == got["authorization-kubeconfig"]
    assert got["kubeconfig"] == "/w/cm.kubeconfig"
    assert got["leader-elect"] == "false"
    assert got["service-account-private-key-file"] == "/w/pki/sa.key"
    assert got["root-ca-file"] == "/w/pki/ca.crt"
    assert got["cert-dir"] == "/w/cm-certs"


def test_only_the_controllers_asked_for() -> None:
    default = flags(controller_manager_argv(Path("k"), FILES, host="127.0.0.1", port=1))
    assert default["controllers"] == "garbagecollector,namespace"
    assert DEFAULT_CONTROLLERS == ("garbagecollector", "namespace")
    one = flags(controller_manager_argv(Path("k"), FILES, host="::1", port=1, controllers=["namespace"]))
    assert one["controllers"] == "namespace"


@pytest.mark.parametrize("controllers", [(), ("a,b",), ("",)])
def test_bad_controller_lists_are_refused(controllers: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="controller"):
        controller_manager_argv(Path("k"), FILES, host="127.0.0.1", port=1, controllers=controllers)
