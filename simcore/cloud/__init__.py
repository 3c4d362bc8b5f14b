"""The core's link to AWS IoT Core (MQTT over mutual TLS), its spooler and shadow sync, and a local stand-in.

Imports nothing from simcore but `errors` and `group`: the router, the shadow engine and the shadow
service are handed in by the caller.
"""

from simcore.cloud.link import CloudConfigError, CloudLink, LinkSettings, load_settings
from simcore.cloud.spooler import FileSpooler, MemorySpooler, make_spooler
from simcore.cloud.standin import RunningCloud, cloud_shadow_get, cloud_shadow_update, start_cloud, watch
from simcore.cloud.sync import ShadowSync, SyncStore

__all__ = [
    "CloudConfigError", "CloudLink", "FileSpooler", "LinkSettings", "MemorySpooler", "RunningCloud",
    "ShadowSync", "SyncStore", "cloud_shadow_get", "cloud_shadow_update", "load_settings", "make_spooler",
    "start_cloud", "watch",
]
