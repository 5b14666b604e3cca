"""The application layer: Node, identity, content types, config, CLI; knows no Textual."""
