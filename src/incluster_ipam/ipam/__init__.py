"""Pure address math and allocation for in-cluster pools: no I/O, no Kubernetes client.

Modules: `addresses` (parsing and immutable interval sets), `pool` (the allocatable set of an IP pool and its
counts), `allocator` (lowest-free allocation per pool), `prefix` (IPv6 prefix pools).
"""
