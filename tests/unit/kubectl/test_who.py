"""The owner chain: controller references first, any kind, ending at the Machine, never crashing on owners
that are missing, forbidden or of kinds the server does not serve."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from incluster_ipam.kubectl import render
from incluster_ipam.kubectl.owners import Resolver, owner_chain
from incluster_ipam.kubectl.who import Holder, Link, State, WhoResult, cluster_name, owner_reference


def ref(
    kind: str, name: str, api_version: str = "example.io/v1", *, controller: bool = False
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": f"uid-{name}",
        "controller": controller,
    }


def obj(kind: str, name: str, *owners: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "ownerReferences": list(owners)},
        **extra,
    }


class Objects(Resolver):
    """A resolver over a dict of objects (by kind and name); anything else answers with a planted state."""

    def __init__(
        self, objects: Mapping[tuple[str, str], dict[str, Any]], states: Mapping[str, State]
    ) -> None:
        self.objects = objects
        self.states = states
        self.reads: list[str] = []

    async def read(self, api_version: str, kind: str, name: str, namespace: str) -> Link:
        self.reads.append(name)
        if name in self.states:
            return Link(kind, api_version, namespace, name, self.states[name], "planted")
        found = self.objects.get((kind, name))
        if found is None:
            return Link(kind, api_version, namespace, name, State.NOT_FOUND)
        return Link(kind, api_version, namespace, name, obj=found)


MACHINE = obj("Machine", "m-1", spec={"clusterName": "prod"})
VM = obj("VSphereVM", "vm-1", ref("Machine", "m-1", "cluster.x-k8s.io/v1beta2", controller=True))
CLAIM = obj("IPAddressClaim", "claim", ref("Other", "unrelated"), ref("VSphereVM", "vm-1", controller=True))


async def test_the_chain_follows_controllers_up_to_the_machine() -> None:
    objects = {("VSphereVM", "vm-1"): VM, ("Machine", "m-1"): obj("Machine", "m-1", ref("MachineSet", "ms"))}
    resolver = Objects(objects, {})
    chain = await owner_chain(resolver, CLAIM)
    assert [str(link) for link in chain] == ["VSphereVM ns/vm-1", "Machine ns/m-1"]
    assert chain[-1].is_machine
    assert resolver.reads == ["vm-1", "m-1"]  # not beyond the Machine


async def test_missing_and_forbidden_owners_end_the_chain_with_what_is_known() -> None:
    chain = await owner_chain(Objects({}, {}), CLAIM)
    assert [str(link) for link in chain] == ["VSphereVM ns/vm-1 (not found)"]
    chain = await owner_chain(Objects({("VSphereVM", "vm-1"): VM}, {"m-1": State.FORBIDDEN}), CLAIM)
    assert [str(link) for link in chain] == ["VSphereVM ns/vm-1", "Machine ns/m-1 (forbidden: planted)"]
    assert await owner_chain(Objects({}, {}), obj("IPAddressClaim", "alone")) == ()


async def test_a_loop_of_owners_is_walked_once() -> None:
    a = obj("Thing", "a", ref("Thing", "b"))
    b = obj("Thing", "b", ref("Thing", "a"))
    resolver = Objects({("Thing", "a"): a, ("Thing", "b"): b}, {})
    chain = await owner_chain(resolver, obj("IPAddressClaim", "c", ref("Thing", "a")))
    assert [link.name for link in chain] == ["a", "b", "a"]


def test_owner_reference_and_cluster_name() -> None:
    assert owner_reference(CLAIM) == ref("VSphereVM", "vm-1", controller=True)
    assert owner_reference(obj("X", "first", ref("A", "a"), ref("B", "b")))["name"] == "a"
    labelled = {"metadata": {"labels": {"cluster.x-k8s.io/cluster-name": "from-label"}}}
    assert cluster_name(None, MACHINE, labelled) == "prod"
    assert cluster_name({"metadata": {}, "spec": {}}, labelled) == "from-label"
    assert cluster_name({"metadata": {}}) is None


def test_who_text_says_what_is_known() -> None:
    held = Holder(
        Link("IPAddress", "ipam.cluster.x-k8s.io/v1beta2", "ns", "claim"),
        "10.0.0.5",
        "InClusterIPPool ns/workers",
        Link("IPAddressClaim", "ipam.cluster.x-k8s.io/v1beta2", "ns", "claim"),
        (
            Link("VSphereVM", "example.io/v1", "ns", "vm-1"),
            Link("Machine", "cluster.x-k8s.io/v1beta2", "ns", "m-1"),
        ),
        Link("Machine", "cluster.x-k8s.io/v1beta2", "ns", "m-1"),
        Link("Cluster", "cluster.x-k8s.io/v1beta2", "ns", "prod", State.NOT_FOUND),
    )
    assert render.who_text(WhoResult("10.0.0.05", "10.0.0.5", (held,))) == [
        "10.0.0.5 is held by IPAddress ns/claim of InClusterIPPool ns/workers",
        "  claim:     IPAddressClaim ns/claim",
        "  owned by:  VSphereVM ns/vm-1",
        "  owned by:  Machine ns/m-1",
        "  machine:   Machine ns/m-1",
        "  cluster:   Cluster ns/prod (not found)",
    ]
    free = WhoResult("10.0.0.7", "10.0.0.7", (), ("InClusterIPPool ns/workers",))
    assert render.who_text(free) == ["no IPAddress holds 10.0.0.7; it is free in InClusterIPPool ns/workers"]
    assert free.to_dict()["held"] is False


def test_a_forbidden_machine_is_named_once_with_its_reason() -> None:
    machine = Link("Machine", "cluster.x-k8s.io/v1beta2", "ns", "m-1", State.FORBIDDEN, "no RBAC")
    held = Holder(
        Link("IPAddress", "ipam.cluster.x-k8s.io/v1beta2", "ns", "c"),
        "10.0.0.5",
        "InClusterIPPool ns/workers",
        Link("IPAddressClaim", "ipam.cluster.x-k8s.io/v1beta2", "ns", "c"),
        (machine,),
        machine,
    )
    assert render.who_text(WhoResult("10.0.0.5", "10.0.0.5", (held,)))[2:] == [
        "  owned by:  Machine ns/m-1 (forbidden: no RBAC)",
        "  machine:   Machine ns/m-1 (forbidden)",
        "  cluster:   - (no Cluster is named)",
    ]
