"""`python -m net.sim ...`: the same as `treechat sim ...`."""

from __future__ import annotations

import sys

from net.sim.run import sim_main

sys.exit(sim_main(sys.argv[1:]))
