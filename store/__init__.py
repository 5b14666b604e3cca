"""Persistence and the feed format: message encoding, validation, the SQLite store."""
