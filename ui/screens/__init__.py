"""Screens of the treechat TUI: the main chat screen and the help dialog."""
