"""``python -m chat``: the treechat command line."""

import sys

from chat.cli import main

sys.exit(main())
