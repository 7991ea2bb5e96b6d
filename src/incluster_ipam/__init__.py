"""incluster-ipam: a Cluster API IPAM provider that allocates addresses from in-cluster pools."""

__version__ = "0.1.0.dev0"
