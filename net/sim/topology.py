"""Overlay graphs for the simulator: random k-regular, line, tree, full; BFS and Dijkstra."""

from __future__ import annotations

import enum
import heapq
import random
from collections import deque
from collections.abc import Callable, Collection, Sequence

# An overlay is an adjacency list: graph[u] is the sorted list of u's neighbours.
Graph = list[list[int]]


class TopologyKind(enum.Enum):
    """The shapes of overlay the simulator can build."""

    REGULAR = "regular"  # random k-regular (configuration model, connected, simple)
    LINE = "line"
    TREE = "tree"  # b-ary tree rooted at node 0
    FULL = "full"


class TopologyError(ValueError):
    """The requested overlay cannot be built (e.g. n*k odd, k >= n)."""


def random_regular(n: int, k: int, rng: random.Random, *, attempts: int = 200) -> Graph:
    """A uniformly-ish random simple connected k-regular graph on n nodes.

    Pairing (configuration) model: n*k half-edges ("stubs") are shuffled and paired.
    A pairing with a loop or a double edge is not thrown away whole: the bad pairs are
    re-paired among themselves and a few random good edges (a standard repair step that
    keeps the result close to uniform and converges in a handful of rounds). A result
    that is not connected is rejected and the whole pairing retried.
    """
    if n < 2:
        raise TopologyError("a regular overlay needs at least 2 nodes")
    if not 1 <= k < n:
        raise TopologyError(f"degree {k} must be between 1 and {n - 1} for {n} nodes")
    if (n * k) % 2:
        raise TopologyError(f"no {k}-regular graph on {n} nodes: n*k must be even")
    if k == 1 and n > 2:
        raise TopologyError("a 1-regular graph on more than 2 nodes is never connected")
    for _ in range(attempts):
        edges = _pair_stubs(n, k, rng)
        if edges is None:
            continue
        graph = _adjacency(n, edges)
        if is_connected(graph):
            return graph
    raise TopologyError(f"could not build a connected {k}-regular graph on {n} nodes")


def _pair_stubs(n: int, k: int, rng: random.Random) -> list[tuple[int, int]] | None:
    stubs = [u for u in range(n) for _ in range(k)]
    rng.shuffle(stubs)
    edges: set[tuple[int, int]] = set()
    bad: list[tuple[int, int]] = []
    for i in range(0, len(stubs), 2):
        u, v = stubs[i], stubs[i + 1]
        e = (u, v) if u < v else (v, u)
        if u == v or e in edges:
            bad.append(e)
        else:
            edges.add(e)
    for _ in range(100):
        if not bad:
            return sorted(edges)
        # Re-pair the bad stubs together with the stubs of some random good edges.
        loose = [x for e in bad for x in e]
        donors = rng.sample(sorted(edges), min(len(edges), max(2, len(bad))))
        for e in donors:
            edges.discard(e)
            loose.extend(e)
        rng.shuffle(loose)
        bad = []
        for i in range(0, len(loose), 2):
            u, v = loose[i], loose[i + 1]
            e = (u, v) if u < v else (v, u)
            if u == v or e in edges:
                bad.append(e)
            else:
                edges.add(e)
    return None


def line(n: int) -> Graph:
    """0 - 1 - 2 - ... - n-1."""
    return _adjacency(n, [(i, i + 1) for i in range(n - 1)])


def tree(n: int, branching: int) -> Graph:
    """A complete b-ary tree in breadth-first order: node i's parent is (i-1)//b."""
    if branching < 1:
        raise TopologyError("a tree needs a branching factor of at least 1")
    return _adjacency(n, [((i - 1) // branching, i) for i in range(1, n)])


def full(n: int) -> Graph:
    """Every node linked to every other node."""
    return [[v for v in range(n) if v != u] for u in range(n)]


def build(kind: TopologyKind, n: int, *, degree: int, branching: int, rng: random.Random) -> Graph:
    """The overlay of the given kind (the rng is only used by the random kinds)."""
    if n < 1:
        raise TopologyError("the overlay needs at least one node")
    if kind is TopologyKind.REGULAR:
        return random_regular(n, degree, rng)
    if kind is TopologyKind.LINE:
        return line(n)
    if kind is TopologyKind.TREE:
        return tree(n, branching)
    return full(n)


def _adjacency(n: int, edges: Sequence[tuple[int, int]]) -> Graph:
    adj: list[set[int]] = [set() for _ in range(n)]
    for u, v in edges:
        adj[u].add(v)
        adj[v].add(u)
    return [sorted(s) for s in adj]


def is_connected(graph: Graph) -> bool:
    """Whether every node is reachable from node 0."""
    if not graph:
        return True
    return len(bfs_hops(graph, 0)) == len(graph)


def bfs_hops(
    graph: Graph,
    source: int,
    usable: Callable[[int, int], bool] | None = None,
) -> dict[int, int]:
    """Hop distance from source to every reachable node (edges filtered by `usable`)."""
    dist = {source: 0}
    queue = deque([source])
    while queue:
        u = queue.popleft()
        d = dist[u] + 1
        for v in graph[u]:
            if v not in dist and (usable is None or usable(u, v)):
                dist[v] = d
                queue.append(v)
    return dist


def dijkstra(
    graph: Graph,
    source: int,
    weight: Callable[[int, int], float],
    usable: Callable[[int, int], bool] | None = None,
) -> dict[int, float]:
    """Shortest-path latency from source to every reachable node."""
    dist = {source: 0.0}
    heap = [(0.0, source)]
    done: set[int] = set()
    while heap:
        d, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        for v in graph[u]:
            if v in done or (usable is not None and not usable(u, v)):
                continue
            nd = d + weight(u, v)
            if nd < dist.get(v, float("inf")):
                dist[v] = nd
                heapq.heappush(heap, (nd, v))
    return dist


def edges_of(graph: Graph) -> list[tuple[int, int]]:
    """Each undirected edge once, as (smaller, larger)."""
    return [(u, v) for u in range(len(graph)) for v in graph[u] if u < v]


def induced_connected(graph: Graph, nodes: Collection[int]) -> bool:
    """Whether the subgraph on `nodes` is connected (empty counts as connected)."""
    members = set(nodes)
    if not members:
        return True
    start = next(iter(members))
    seen = bfs_hops(graph, start, lambda _u, v: v in members)
    return len(seen) == len(members)
