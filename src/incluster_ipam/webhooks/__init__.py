"""The webhook server (an I/O edge): admission for the four pool kinds and v1alpha1 conversion, over HTTPS.

Start it with `WebhookServer` (see `incluster_ipam.webhooks.server`); the rules themselves live in the pure
`incluster_ipam.api` package.
"""

from incluster_ipam.webhooks.lookups import AddressLookup, PoolLookup
from incluster_ipam.webhooks.server import WebhookServer, build_app

__all__ = ["AddressLookup", "PoolLookup", "WebhookServer", "build_app"]
