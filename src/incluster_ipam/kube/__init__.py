"""The Kubernetes API client: the only package that talks HTTP to the apiserver.

Pure parts (`resources`, `requests`, `watch`, `errors`) build requests and decode answers without I/O;
`client.KubeClient` is the transport and `events.EventRecorder` writes Events through it.
"""

from __future__ import annotations

from .client import KubeClient, ObjectList, WatchStream
from .config import ClusterConfig, ConfigError, TokenSource, in_cluster_config, load_config, load_kubeconfig
from .errors import (
    ApiError,
    KubeError,
    TransportError,
    WatchDecodeError,
    WatchExpired,
    error_from_response,
    error_from_status,
    is_already_exists,
    is_conflict,
    is_gone,
    is_invalid,
    is_not_found,
)
from .events import NORMAL, WARNING, EventRecorder, TokenBucket, object_reference
from .requests import PatchType, Request
from .resources import CONFIGMAPS, EVENTS, LEASES, NAMESPACES, Obj, Resource, object_key, split_key
from .watch import ADDED, BOOKMARK, DELETED, ERROR, MODIFIED, WatchDecoder, WatchEvent, decode_event

__all__ = [
    "ADDED",
    "BOOKMARK",
    "CONFIGMAPS",
    "DELETED",
    "ERROR",
    "EVENTS",
    "LEASES",
    "MODIFIED",
    "NAMESPACES",
    "NORMAL",
    "WARNING",
    "ApiError",
    "ClusterConfig",
    "ConfigError",
    "EventRecorder",
    "KubeClient",
    "KubeError",
    "Obj",
    "ObjectList",
    "PatchType",
    "Request",
    "Resource",
    "TokenBucket",
    "TokenSource",
    "TransportError",
    "WatchDecodeError",
    "WatchDecoder",
    "WatchEvent",
    "WatchExpired",
    "WatchStream",
    "decode_event",
    "error_from_response",
    "error_from_status",
    "in_cluster_config",
    "is_already_exists",
    "is_conflict",
    "is_gone",
    "is_invalid",
    "is_not_found",
    "load_config",
    "load_kubeconfig",
    "object_key",
    "object_reference",
    "split_key",
]
