"""Finding 11 of the December review: a watch's read timeout was its server-side timeout plus 30 s (330-630
s), so a connection that went silent (a half-open TCP flow, a dead load-balancer backend) went unnoticed for
up to 10.5 minutes. Now a watch that stays silent for two minutes counts as dead. A healthy one never does:
kube-apiserver's first BOOKMARK comes about two minutes into a quiet watch (every minute after that), so the
client asks the server to end each watch before the idle timeout (it resumes from its resourceVersion)."""

from __future__ import annotations

from incluster_ipam.kube import KubeClient, Resource
from incluster_ipam.kube.config import ClusterConfig

ADDRESSES = Resource("ipam.cluster.x-k8s.io", "v1beta2", "ipaddresses", "IPAddress", True)


async def test_finding_11_a_silent_watch_is_noticed_within_two_minutes() -> None:
    async with KubeClient(ClusterConfig(server="https://127.0.0.1:1")) as client:
        for server_timeout in (300, 450, 600):
            stream = client.watch(ADDRESSES, timeout_seconds=server_timeout)
            assert stream._read_timeout is not None
            assert 60 < stream._read_timeout <= 120
            assert int(stream._request.query["timeoutSeconds"]) < stream._read_timeout - 10
