"""The application layer: Node, identity, content types, config, CLI; knows no Textual."""

__version__ = "0.1.0"
"""The release of the treechat package (pyproject.toml reads it from here)."""
