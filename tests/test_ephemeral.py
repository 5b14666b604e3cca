"""The ephemeral gossip core (net/ephemeral.py), its frames and the hear/tell matrix: pure."""

from __future__ import annotations

import random
from collections.abc import Sequence

import msgpack
import pytest

from net.ephemeral import (
    BODY_LIMIT,
    ID_SIZE,
    MAX_TTL,
    CutOff,
    Datum,
    DatumError,
    Deliver,
    Gossip,
    GossipConfig,
    SendAck,
    SendDatum,
    sends,
)
from net.errors import LocalProtocolError, RemoteProtocolError
from net.frames import Ephemeral, EphemeralAck, FrameDecoder, decode_frame_body, encode_frame
from net.policy import Access, Audience, link_access, refusal

T0 = 1_000_000.0


class Coin(random.Random):
    """A random source whose `random()` answers from a script (the proxy coin)."""

    def __init__(self, flips: list[float]) -> None:
        super().__init__(7)
        self.flips = list(flips)

    def random(self) -> float:
        return self.flips.pop(0)

    def getrandbits(self, k: int) -> int:  # so choice() does not spend coins
        return super().getrandbits(k)


def core(*peers: str, rng: random.Random | None = None, **config: object) -> Gossip:
    g = Gossip(rng or random.Random(1), GossipConfig(**config))  # type: ignore[arg-type]
    for p in peers:
        g.connect(p, T0)
    return g


def datum(hops_left: int = 2, *, expires: float = T0 + 30, n: int = 1) -> Datum:
    return Datum(n.to_bytes(ID_SIZE, "big"), "whisper", hops_left, expires, b"hi")


def targets(actions: Sequence[object]) -> dict[str, int]:
    return {a.peer: a.datum.hops_left for a in actions if isinstance(a, SendDatum)}  # type: ignore[misc]


# -- hops, dedup, expiry -----------------------------------------------------------


def test_emit_sends_hops_minus_one_to_every_peer() -> None:
    g = core("a", "b", "c")
    assert targets(g.emit("typing", b"x", 1, 5, T0)) == {"a": 0, "b": 0, "c": 0}
    assert targets(g.emit("whisper", b"x", 3, 5, T0)) == {"a": 2, "b": 2, "c": 2}


def test_relay_decrements_hops_and_skips_the_sender() -> None:
    g = core("a", "b", "c")
    actions = g.receive("a", datum(2), T0)
    assert [a for a in actions if isinstance(a, Deliver)] == [Deliver(datum(2), "a")]
    assert targets(actions) == {"b": 1, "c": 1}


def test_zero_hops_left_is_delivered_not_relayed() -> None:
    g = core("a", "b")
    actions = g.receive("a", datum(0), T0)
    assert [type(a) for a in actions] == [Deliver]


def test_a_copy_seen_before_is_neither_delivered_nor_relayed() -> None:
    g = core("a", "b", "c")
    g.receive("a", datum(2), T0)
    assert g.receive("b", datum(2), T0 + 1) == []
    assert g.receive("c", datum(1), T0 + 1) == []
    assert g.dropped["seen"] == 2


def test_a_copy_with_more_hops_left_is_relayed_again_not_delivered() -> None:
    g = core("a", "b", "c")
    g.receive("a", datum(0), T0)  # came the long way round
    actions = g.receive("b", datum(2), T0 + 0.1)
    assert not any(isinstance(a, Deliver) for a in actions)
    assert targets(actions) == {"a": 1, "c": 1}


def test_without_rerelay_the_first_copy_decides() -> None:
    g = core("a", "b", "c", rerelay=False)
    g.receive("a", datum(0), T0)
    assert g.receive("b", datum(2), T0 + 0.1) == []


def test_expired_data_are_dropped_and_so_are_expiries_too_far_ahead() -> None:
    g = core("a", "b")
    assert g.receive("a", datum(2, expires=T0), T0) == []
    assert g.receive("a", datum(2, expires=T0 + 2 * MAX_TTL, n=2), T0) == []
    assert g.dropped["expired"] == 2


def test_seen_cache_holds_ids_until_expiry_then_forgets_them() -> None:
    g = core("a", "b")
    g.receive("a", datum(1, expires=T0 + 10), T0)
    g.tick(T0 + 9)
    assert g.receive("b", datum(1, expires=T0 + 10), T0 + 9) == []
    g.tick(T0 + 10)
    assert g.seen == {}


def test_seen_cache_is_bounded_oldest_out() -> None:
    g = core("a", seen_limit=3, peer_burst=100)
    for n in range(5):
        g.receive("a", datum(0, n=n), T0)
    assert list(g.seen) == [n.to_bytes(ID_SIZE, "big") for n in (2, 3, 4)]
    assert g.dropped["seen-cache full"] == 2


def test_emit_checks_its_limits() -> None:
    g = core("a")
    with pytest.raises(DatumError, match="at most 1024 bytes"):
        g.emit("whisper", b"x" * (BODY_LIMIT + 1), 1, 5, T0)
    with pytest.raises(DatumError, match="hops must be 1 to"):
        g.emit("whisper", b"x", 0, 5, T0)
    with pytest.raises(DatumError, match="lives 0 to"):
        g.emit("whisper", b"x", 1, MAX_TTL + 1, T0)


# -- hear and tell -----------------------------------------------------------------


def test_data_go_only_to_peers_we_tell_and_come_only_from_peers_we_hear() -> None:
    g = core()
    g.connect("told", T0, hear=False, tell=True)
    g.connect("heard", T0, hear=True, tell=False)
    assert targets(g.emit("presence", b"", 1, 5, T0)) == {"told": 0}
    assert g.receive("told", datum(1), T0) == []
    assert g.dropped["not heard"] == 1
    assert [type(a) for a in g.receive("heard", datum(1), T0)] == [Deliver, SendDatum]
    g.set_access("heard", hear=False, tell=False)
    assert g.receive("heard", datum(1, n=2), T0) == []


ME, FRIEND, FAN, MUTUAL, BLOCKED = (bytes([i]) * 32 for i in range(5))
FOLLOWS = {FRIEND, MUTUAL, BLOCKED}  # we follow them
MUTUALS = {MUTUAL}  # and MUTUAL follows us back; FAN follows us, we do not follow FAN


@pytest.mark.parametrize(
    ("audience", "admitted"),
    [
        (Audience.ANYBODY, {FRIEND, FAN, MUTUAL}),
        (Audience.FOLLOWING, {FRIEND, MUTUAL}),
        (Audience.MUTUALS, {MUTUAL}),
    ],
)
def test_hear_tell_matrix(audience: Audience, admitted: set[bytes]) -> None:
    def verdict(peer: bytes, hear: Audience, tell: Audience) -> Access:
        return link_access(
            peer, hear=hear, tell=tell, follows=FOLLOWS, mutuals=MUTUALS, blocks={BLOCKED}
        )

    for other in (Audience.ANYBODY, Audience.FOLLOWING, Audience.MUTUALS):
        for peer in (FRIEND, FAN, MUTUAL, BLOCKED):
            assert verdict(peer, audience, other).hear == (peer in admitted), (other, peer)
            assert verdict(peer, other, audience).tell == (peer in admitted), (other, peer)
    assert Access(False, False).refused and not Access(True, False).refused


def test_refusal_names_both_settings() -> None:
    words = refusal(Audience.MUTUALS, Audience.FOLLOWING)
    assert words == "not heard or told: this node hears mutuals and tells following"


# -- proxy pass --------------------------------------------------------------------


def test_heads_hand_the_datum_to_one_proxy_which_confirms() -> None:
    g = core("a", "b", "c", rng=Coin([0.2]), pass_=True)
    actions = g.emit("whisper", b"psst", 2, 60, T0)
    (handed,) = actions
    assert isinstance(handed, SendDatum) and handed.proxy and handed.datum.hops_left == 1
    assert g.receive_ack(handed.peer, handed.datum.id, True, T0 + 1) == []
    assert g.proxying == {} and g.tick(T0 + 60) == []


def test_tails_send_to_everyone_as_usual() -> None:
    g = core("a", "b", rng=Coin([0.7]), pass_=True)
    assert targets(g.emit("whisper", b"psst", 2, 60, T0)) == {"a": 1, "b": 1}


def test_a_silent_proxy_is_replaced_after_30_s_starting_at_the_coin() -> None:
    g = core("a", "b", rng=Coin([0.2, 0.9]), pass_=True)
    (handed,) = g.emit("whisper", b"psst", 2, 120, T0)
    assert isinstance(handed, SendDatum) and handed.proxy
    assert g.tick(T0 + 29.9) == []
    retried = g.tick(T0 + 30)
    assert targets(retried) == {"a": 1, "b": 1}  # the second coin said: the ordinary path
    assert g.dropped["proxy silent"] == 1


def test_a_refusing_proxy_is_replaced_at_once() -> None:
    g = core("a", "b", rng=Coin([0.2, 0.3]), pass_=True)
    (first,) = g.emit("whisper", b"psst", 2, 120, T0)
    (second,) = g.receive_ack(first.peer, first.datum.id, False, T0 + 1)  # type: ignore[union-attr]
    assert isinstance(second, SendDatum) and second.proxy


def test_an_ack_from_someone_else_changes_nothing() -> None:
    g = core("a", "b", rng=Coin([0.2]), pass_=True)
    (handed,) = g.emit("whisper", b"psst", 2, 120, T0)
    other = "a" if handed.peer == "b" else "b"  # type: ignore[union-attr]
    g.receive_ack(other, handed.datum.id, True, T0)  # type: ignore[union-attr]
    assert g.proxying


def test_a_proxy_emits_as_its_own_with_the_same_hops_and_its_own_coin() -> None:
    g = core("origin", "x", "y", rng=Coin([0.9]), pass_=True)
    actions = g.receive("origin", datum(1), T0, proxy=True)
    assert actions[0] == SendAck("origin", datum(1).id, True)
    assert isinstance(actions[1], Deliver)
    # As its own: hops not decremented; the peer that handed it has it already.
    assert targets(actions) == {"x": 1, "y": 1}


def test_a_proxy_that_passed_the_datum_on_already_refuses() -> None:
    g = core("a", "b")
    g.receive("a", datum(2), T0)  # relayed with 1 hop left: a proxy copy of 1 is no news
    assert g.receive("b", datum(1), T0, proxy=True) == [SendAck("b", datum(1).id, False)]


def test_a_proxy_that_does_not_hear_us_refuses() -> None:
    g = core()
    g.connect("a", T0, hear=False)
    assert g.receive("a", datum(2), T0, proxy=True) == [SendAck("a", datum(2).id, False)]


def test_a_dropped_proxy_link_retries_elsewhere() -> None:
    g = core("a", "b", rng=Coin([0.2, 0.9]), pass_=True)
    (handed,) = g.emit("whisper", b"psst", 2, 120, T0)
    gone = handed.peer  # type: ignore[union-attr]
    assert set(targets(g.disconnect(gone, T0 + 1))) == {"a", "b"} - {gone}


def test_after_the_last_attempt_the_ordinary_path_is_taken() -> None:
    g = core("a", "b", rng=Coin([0.1] * 10), pass_=True, proxy_attempts=2)
    (first,) = g.emit("whisper", b"psst", 2, 500, T0)
    assert isinstance(first, SendDatum) and first.proxy
    (second,) = g.tick(T0 + 30)
    assert isinstance(second, SendDatum) and second.proxy
    assert targets(g.tick(T0 + 60)) == {"a": 1, "b": 1}


# -- limits ------------------------------------------------------------------------


def test_a_flooding_peer_is_cut_off_and_named_once() -> None:
    g = core("flooder", "calm", peer_rate=2, peer_burst=5)
    delivered = 0
    cut: list[CutOff] = []
    for n in range(20):  # 20 per second against 2 per second, burst 5
        for a in g.receive("flooder", datum(0, n=n), T0 + n * 0.05):
            delivered += isinstance(a, Deliver)
            if isinstance(a, CutOff):
                cut.append(a)
    assert delivered == 5  # the burst; the first datum over the rate cuts the peer off
    assert (
        len(cut) == 1
        and cut[0].peer == "flooder"
        and "2 ephemeral data per second" in (cut[0].reason)
    )
    assert g.cut_off("flooder") == cut[0].until
    assert g.receive("calm", datum(0, n=99), T0 + 1)  # the others go on
    later = cut[0].until + 1
    assert any(
        isinstance(a, Deliver)
        for a in g.receive("flooder", datum(0, expires=later + 9, n=100), later)
    )


def test_reconnecting_does_not_lift_a_cut_off() -> None:
    g = core("flooder", peer_rate=1, peer_burst=1)
    g.receive("flooder", datum(0, n=1), T0)
    g.receive("flooder", datum(0, n=2), T0)
    g.disconnect("flooder", T0)
    g.connect("flooder", T0 + 1)
    assert g.receive("flooder", datum(0, n=3), T0 + 1) == []
    g.tick(T0 + 301)
    g.connect("flooder", T0 + 301)
    assert g.receive("flooder", datum(0, expires=T0 + 400, n=4), T0 + 301)


def test_a_cut_off_peer_gets_nothing_from_us_either() -> None:
    g = core("flooder", "calm", peer_rate=1, peer_burst=1)
    g.receive("flooder", datum(0, n=1), T0)
    g.receive("flooder", datum(0, n=2), T0)
    assert set(targets(g.emit("presence", b"", 1, 5, T0))) == {"calm"}


def test_the_global_budget_delivers_but_stops_relaying() -> None:
    g = core("a", "b", relay_rate=1, relay_burst=2, peer_burst=100)
    relayed = [bool(sends(g.receive("a", datum(1, n=n), T0))) for n in range(4)]
    assert relayed == [True, True, False, False]
    assert g.dropped["over budget"] == 2


# -- frames ------------------------------------------------------------------------


def test_ephemeral_frames_round_trip() -> None:
    for frame in (Ephemeral(datum(3), proxy=True), EphemeralAck(b"\x01" * ID_SIZE, False)):
        assert FrameDecoder().feed(encode_frame(frame)) == [frame]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"id": b"short", "kind": "w", "hops": 1, "exp": 1.0, "body": b""}, "16 bytes"),
        ({"id": b"x" * 16, "kind": "w", "hops": 9, "exp": 1.0, "body": b""}, "hops left"),
        ({"id": b"x" * 16, "kind": "", "hops": 1, "exp": 1.0, "body": b""}, "kind"),
        ({"id": b"x" * 16, "kind": "w", "hops": 1, "exp": "soon", "body": b""}, "expiry"),
        ({"id": b"x" * 16, "kind": "w", "hops": 1, "exp": 1.0, "body": b"x" * 2000}, "body"),
        ({"id": b"x" * 16, "kind": "w", "hops": 1, "exp": 1, "body": b"", "proxy": 1}, "proxy"),
    ],
)
def test_bad_ephemeral_frames_are_refused_in_words(body: dict[str, object], words: str) -> None:
    with pytest.raises(RemoteProtocolError, match=words):
        decode_frame_body(msgpack.packb(["eph", body], use_bin_type=True))


def test_we_cannot_send_a_datum_over_the_limit() -> None:
    big = Datum(b"x" * ID_SIZE, "whisper", 0, T0, b"x" * (BODY_LIMIT + 1))
    with pytest.raises(LocalProtocolError, match="at most 1024"):
        encode_frame(Ephemeral(big))
