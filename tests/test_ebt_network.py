"""EBT core over many nodes: a Hypothesis state machine for the invariants of docs/ebt.md,
and the redundancy of a formed tree on a random graph."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from net.ebt import EbtConfig
from tests.ebt_harness import Network, feed_id

NODES = ["n0", "n1", "n2", "n3"]
FEEDS = [feed_id(n) for n in NODES]
CONFIG = EbtConfig(stall_timeout=1.0, swap_after=3)


def eager_violations(net: Network) -> list[str]:
    """Feeds asked eagerly from more than one peer, or from two peers that are ahead."""
    bad = []
    for name, node in net.nodes.items():
        rep = node.rep
        links = {peer: rep.link(peer) for peer in rep.peers}
        for feed in rep.replicating:
            local = rep.local_clock.get(feed, 0)
            rx = [p for p, states in links.items() if feed in states and states[feed].rx]
            ahead = [p for p in rx if (links[p][feed].remote_seq or 0) > local]
            if len(rx) > 1 or len(ahead) > 1:
                bad.append(f"{name}: {feed!r} eager from {rx}")
            source = rep.eager_source(feed)
            if rx and source != rx[0]:
                bad.append(f"{name}: {feed!r} eager_source {source} but rx from {rx}")
    return bad


class EbtMachine(RuleBasedStateMachine):
    """Random connects, disconnects, appends, wiped nodes, partial deliveries and ticks."""

    config = CONFIG
    store_delay = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.net = Network(self.config, latency=0.01, push_batch=3, store_delay=self.store_delay)
        for name in NODES:
            self.net.add(name, FEEDS)

    @rule(a=st.sampled_from(NODES))
    def wipe(self, a: str) -> None:
        """`a` loses its database (messages and records); its peers still remember it."""
        for x, y in self.net.links:
            if a in (x, y):
                self.net.disconnect(x, y)
        self.net.add(a, FEEDS)

    @rule(
        a=st.sampled_from(NODES),
        b=st.sampled_from(NODES),
        latency=st.sampled_from([0.002, 0.01, 0.03, 2.0]),
    )
    def connect(self, a: str, b: str, latency: float) -> None:
        if a != b and not self.net.connected(a, b):
            self.net.connect(a, b, latency=latency)

    @rule(a=st.sampled_from(NODES), b=st.sampled_from(NODES))
    def disconnect(self, a: str, b: str) -> None:
        if self.net.connected(a, b):
            self.net.disconnect(a, b)

    @rule(a=st.sampled_from(NODES), count=st.integers(1, 8))
    def append(self, a: str, count: int) -> None:
        self.net.append(a, count=count)

    @rule(a=st.sampled_from(NODES), b=st.sampled_from(NODES))
    def toggle_want(self, a: str, b: str) -> None:
        """`a` stops or starts replicating `b`'s feed."""
        if a == b:
            return
        node = self.net.nodes[a]
        feed = feed_id(b)
        if feed in node.rep.replicating:
            self.net.apply(node, node.rep.unwant(feed, self.net.now))
        else:
            self.net.apply(node, node.rep.want(feed, self.net.now))

    @rule(count=st.integers(1, 40))
    def deliver_some(self, count: int) -> None:
        self.net.deliver_some(count)

    @rule(dt=st.floats(0.001, 2.5))
    def tick(self, dt: float) -> None:
        self.net.tick(dt)

    @rule()
    def settle_and_check_no_stall(self) -> None:
        self.net.settle()
        for a, b in self.net.links:
            assert self.net.in_sync(a, b), (a, b, self._heads())

    @precondition(lambda self: len(self.net.links) >= 2)
    @rule(a=st.sampled_from(NODES))
    def steady_state_crosses_each_link_once(self, a: str) -> None:
        net = self.net
        net.settle()
        for _ in range(CONFIG.swap_after + 2):  # let the tree of a's feed form
            net.append(a)
            net.settle()
        net.stats.reset()
        net.append(a)
        net.settle()
        over = {k: v for k, v in net.stats.crossings.items() if v > 1}
        assert not over, over
        assert net.stats.stores == len(self._component(a, feed_id(a))) - 1

    @invariant()
    def at_most_one_eager_source(self) -> None:
        bad = eager_violations(self.net)
        assert not bad, bad

    def _component(self, start: str, feed: bytes) -> set[str]:
        """Nodes `feed` can reach from `start`: only nodes replicating it relay it."""
        seen = {start}
        todo = [start]
        while todo:
            x = todo.pop()
            for y in NODES:
                if (
                    y not in seen
                    and self.net.connected(x, y)
                    and feed in self.net.nodes[y].rep.replicating
                ):
                    seen.add(y)
                    todo.append(y)
        return seen

    def _heads(self) -> dict[str, list[int]]:
        return {n: [node.head(f) for f in FEEDS] for n, node in self.net.nodes.items()}


EbtMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEbtMachine = EbtMachine.TestCase


class CoalescingEbtMachine(EbtMachine):
    """The same with notes held back for a window (note_delay)."""

    config = EbtConfig(stall_timeout=1.0, swap_after=2, note_delay=0.05)


CoalescingEbtMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCoalescingEbtMachine = CoalescingEbtMachine.TestCase


def random_graph(n: int, edges: int, rng: random.Random) -> list[tuple[int, int]]:
    """A connected random graph: a random spanning tree plus random extra edges."""
    order = list(range(n))
    rng.shuffle(order)
    chosen = {tuple(sorted((order[i], order[rng.randrange(i)]))) for i in range(1, n)}
    while len(chosen) < edges:
        a, b = rng.sample(range(n), 2)
        chosen.add(tuple(sorted((a, b))))
    return sorted((a, b) for a, b in chosen)


def test_a_formed_tree_sends_each_new_message_about_once_per_node() -> None:
    rng = random.Random(7)
    n = 10
    names = [f"p{i}" for i in range(n)]
    feeds = [feed_id(name) for name in names]
    net = Network(EbtConfig(stall_timeout=1.0), latency=0.01)
    for name in names:
        net.add(name, feeds)
        net.append(name, count=5)
    for i, j in random_graph(n, 2 * n - 1, rng):
        net.connect(names[i], names[j], latency=rng.uniform(0.002, 0.03))
    net.settle()
    for i in range(60):  # warm-up: every feed's tree forms and settles
        net.append(names[i % n])
        net.settle(rounds=1)
    net.stats.reset()
    live = 50
    for _ in range(live):
        net.append(rng.choice(names))
        net.settle(rounds=1)
    for a, b in net.links:
        assert net.in_sync(a, b)
    ratio = net.stats.payloads / (live * (n - 1))
    assert ratio <= 1.05, ratio
    assert net.stats.stores == live * (n - 1)


def test_flooding_sends_far_more_than_a_tree() -> None:
    """The same graph with prune=False: the tree test above measures something real."""
    rng = random.Random(7)
    n = 10
    names = [f"p{i}" for i in range(n)]
    feeds = [feed_id(name) for name in names]
    net = Network(EbtConfig(prune=False), latency=0.01)
    for name in names:
        net.add(name, feeds)
    for i, j in random_graph(n, 2 * n - 1, rng):
        net.connect(names[i], names[j], latency=rng.uniform(0.002, 0.03))
    net.settle(rounds=1)
    net.stats.reset()
    for i in range(10):
        net.append(names[i])
        net.settle(rounds=1)
    assert net.stats.payloads / (10 * (n - 1)) > 1.5


class SlowStoreEbtMachine(EbtMachine):
    """The same with an asynchronous store: StoreMessages wait in a FIFO, as in the node."""

    store_delay = 0.02


SlowStoreEbtMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSlowStoreEbtMachine = SlowStoreEbtMachine.TestCase
