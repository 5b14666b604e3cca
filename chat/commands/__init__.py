"""Handlers of the treechat subcommands, one module each (see chat/cli.py COMMANDS)."""
