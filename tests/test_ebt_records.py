"""Request skipping in a mesh (pure): after live traffic has settled, reconnecting every
link sends almost no clock entries, and what changed meanwhile still gets through."""

from __future__ import annotations

import random

from net.ebt import EbtConfig
from tests.ebt_harness import Network, feed_id

NAMES = [f"n{i}" for i in range(8)]
FEEDS = [feed_id(name) for name in NAMES]
# A ring with chords: every node has 2-4 links, so most links end up lazy.
EDGES = [(NAMES[i], NAMES[(i + 1) % 8]) for i in range(8)] + [
    ("n0", "n4"),
    ("n1", "n5"),
    ("n2", "n6"),
    ("n3", "n7"),
]


def mesh(config: EbtConfig) -> Network:
    net = Network(config)
    for name in NAMES:
        net.add(name, FEEDS)
    for a, b in EDGES:
        net.connect(a, b)
    net.settle()
    return net


def live_traffic(net: Network, count: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(count):
        net.append(rng.choice(NAMES))
        net.tick(0.05)
    net.settle()
    # Held-back record notes go out within record_delay.
    net.tick(net.config.record_delay + 0.1)
    net.run()


def reconnect_all(net: Network) -> int:
    """Close and reopen every link; the clock entries that crossed on reopening."""
    for a, b in EDGES:
        net.disconnect(a, b)
    net.stats.reset()
    for a, b in EDGES:
        net.connect(a, b)
    net.settle()
    return net.stats.note_entries


def test_a_settled_mesh_reconnects_with_almost_no_clock_entries() -> None:
    net = mesh(EbtConfig())
    live_traffic(net, 60, seed=1)
    full = len(EDGES) * 2 * len(FEEDS)
    sent = reconnect_all(net)
    assert sent <= 0.05 * full, f"{sent} of {full} clock entries"
    assert all(net.in_sync(a, b) for a, b in EDGES)


def test_what_changed_while_apart_still_gets_through() -> None:
    net = mesh(EbtConfig())
    live_traffic(net, 30, seed=2)
    for a, b in EDGES:
        net.disconnect(a, b)
    net.append("n3", count=4)  # n3 wrote while alone
    for a, b in EDGES:
        net.connect(a, b)
    net.settle()
    head = net.nodes["n3"].head(feed_id("n3"))
    assert all(node.head(feed_id("n3")) == head for node in net.nodes.values())
