"""The core's link to AWS IoT Core (MQTT over mutual TLS), its spooler and shadow sync, and a local stand-in.

The link, spooler and sync import nothing from the core: the router, the shadow engine and the shadow
service are handed in by the caller. The stand-in (`standin`, `broker`, `ca`) is only imported where used.
"""
