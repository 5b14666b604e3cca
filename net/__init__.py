"""Replication and networking: handshake, box-stream, frames, EBT, discovery, schedule."""

PROTOCOL_VERSION = "1"
"""The wire protocol's version (docs/protocol.md); zeroconf announces it as ``v`` and nodes
ignore announcements of another version."""
