"""Replication and networking: handshake, box-stream, frames, EBT, discovery, schedule."""
