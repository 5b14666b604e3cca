"""Widgets of the treechat TUI: conversation, sidebar lists, replication pane, input line."""
