"""The Textual user interface; talks to chat.Node only."""
