"""`kubectl ipam`, the kubectl plugin: pool usage, a pool's ranges and holders, who holds an address (up the
owner chain to the Machine and the Cluster), and the audit. A client tool, apart from the provider.

`usage`, `who` and `render` are pure (objects in, data and text out); `owners` walks owner references
through the API; `command` parses the flags, reads the cluster and prints.
"""

from __future__ import annotations

from .command import main

__all__ = ["main"]
