"""The webhook server (an I/O edge): admission for the four pool kinds and v1alpha1 conversion, over HTTPS.

Start it with `WebhookServer` (see `incluster_ipam.webhooks.server`), answering from `InformerLookups`
(`incluster_ipam.webhooks.lookups`); register it with an API server through
`incluster_ipam.webhooks.registration` (`install_webhooks` for local runs). The rules themselves live in the
pure `incluster_ipam.api` package.
"""

from incluster_ipam.webhooks.lookups import AddressLookup, InformerLookups, PoolLookup, start_lookups
from incluster_ipam.webhooks.registration import install_webhooks, uninstall_webhooks
from incluster_ipam.webhooks.server import WebhookServer, build_app

__all__ = [
    "AddressLookup",
    "InformerLookups",
    "PoolLookup",
    "WebhookServer",
    "build_app",
    "install_webhooks",
    "start_lookups",
    "uninstall_webhooks",
]
