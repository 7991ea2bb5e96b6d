"""Examples of building on incluster-ipam's packages; each has its tests under `tests/`."""
