"""Cluster API vocabulary, pure: what the provider reads from claims, IPAddresses, pools and Clusters (keys,
predicates, projections, indexes) and what it writes under the IPAM contract in use (IPAddress bodies, owner
references, Ready conditions). No I/O: shared by the claim core, the in-cluster backend, the webhooks and
the audit."""
