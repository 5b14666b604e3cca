"""``treechat doctor``: run the checks of chat/doctor/ and print them; exit 0/1/2."""

from __future__ import annotations

import argparse
import json
import os
import sys

from chat.config import Config
from chat.doctor import exit_status, report_json, report_lines, run_checks


def run(args: argparse.Namespace, config: Config) -> int:
    """Each check as ok / warning / problem with its fix, or one JSON document."""
    findings = run_checks(config, env=os.environ, is_tty=sys.stdout.isatty())
    if getattr(args, "json", False):
        print(json.dumps(report_json(findings), indent=2))
    else:
        print("\n".join(report_lines(findings)))
    return exit_status(findings)
