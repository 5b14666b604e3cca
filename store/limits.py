"""Every bound on what a stranger can make this node hold, in one place, each with its reason.

Anyone who knows our address can connect, and the handshake proves only that they hold
some key: a fresh key costs nothing. So everything a connection can make us keep (queued
messages, notes, remembered peers, refusals, half-open sockets, buffered answers, invite
guesses) is bounded here, and what we keep about a peer expires. The numbers are far
above what an honest peer needs (see docs/limits.md) and far below what hurts a node.
This module sits in the lowest layer so that every layer reads the same numbers.
"""

from __future__ import annotations

# -- receiving messages (net/replication.py) -------------------------------------------

#: Received messages of one peer queued for the store before its reader waits. One
#: peer's flood then slows only that peer; the node-wide bound (MAX_PENDING_STORE in
#: net/replication.py) stays for the sum.
MAX_QUEUED_PER_PEER = 5_000
#: Copies of messages we already hold, queued for the fork check (a different message at
#: a held seq). Beyond this the copies are dropped unchecked: a fork still shows when
#: the next new message fails to link.
MAX_DUPLICATE_CHECKS = 2_000
#: A peer is cut off once it has sent this many copies of messages we hold in one
#: session and they outnumber its new messages DUPLICATE_RATIO to one. Honest overlap
#: (a hand-over between sources, a push already in flight) is a few frames at most.
DUPLICATES_BEFORE_CUTOFF = 5_000
DUPLICATE_RATIO = 10

# -- notes and request-skipping records (net/ebt.py, store/db.py) ----------------------

#: Feeds a peer may mention in one session that we do not replicate and still get a -1
#: answer for. An honest peer mentions each such feed once; a million random feed ids
#: would otherwise cost a million answers.
MAX_UNKNOWN_FEED_ANSWERS = 5_000
#: Notes a peer may send: a burst of NOTES_BURST (an opening clock of a big pub), then
#: NOTES_PER_SECOND. Each note costs work on our event loop; faster is a flood and the
#: session is cut off.
NOTES_BURST = 100_000
NOTES_PER_SECOND = 10_000
#: Feeds a peer may name in one session (net/notes.py: each named feed gets a number the
#: session keeps, about 100 bytes of memory). A pub's opening clock names every feed
#: it replicates once; more than this in one session is a protocol error.
MAX_NAMED_FEEDS = 200_000
#: Entries saved in one peer's request-skipping record (only feeds we replicate are
#: recorded at all; this is the backstop).
MAX_RECORD_FEEDS = 50_000
#: Peers whose request-skipping record is kept on disk; the least recently saved go
#: first. A forgotten record only means one full clock exchange.
MAX_SAVED_RECORDS = 500
#: A saved record not refreshed for this long is dropped (seconds).
RECORD_TTL = 90 * 24 * 3600.0

# -- peers we remember (net/replication.py, chat/connections.py, net/schedule.py) ------

#: Disconnected peers whose counters, last error and in-memory record we keep (the
#: most recently seen first). Connected peers are always kept.
MAX_REMEMBERED_PEERS = 500
#: A key that dialled us, with no address to dial it back, is forgotten this long
#: after its link closed (seconds), unless it is a peer we chose (manual, pub, friend).
STRANGER_TTL = 600.0
#: Refused handshakes remembered for `treechat status` (newest kept), and for how long.
MAX_REFUSALS = 50
REFUSAL_TTL = 3600.0
#: Peers listed one by one in status.json (connected first, then the most recently
#: seen); the rest are only counted.
STATUS_PEERS = 100

# -- connections (net/server.py, net/peer.py, chat/connections.py) ---------------------

#: New sessions from one IP address (IPv6: from one /64, what one machine is given): a
#: burst of NEW_SESSIONS_BURST, then NEW_SESSIONS_PER_SECOND. Taken when the socket is
#: accepted, before any handshake work, so a stranger redialling with fresh keys costs
#: us a closed socket, not a handshake. A session whose handshake shows a key we know
#: (one we chose, follow, or found on the LAN) gets its share back: honest peers behind
#: one address (a household, two profiles on one machine) never use the budget up.
NEW_SESSIONS_BURST = 30
NEW_SESSIONS_PER_SECOND = 1.0
#: A session we cut off for flooding costs its address this many more: the whole
#: burst, so a flooder gets about one session per NEW_SESSIONS_BURST seconds after it.
CUT_OFF_PENALTY = NEW_SESSIONS_BURST
#: Addresses whose session budget is tracked at once (the longest unused dropped first).
MAX_SESSION_ADDRESSES = 10_000

#: Handshakes in progress at once, in total and from one IP address. Further sockets
#: are closed at once; an honest peer dials once and finishes within a second.
MAX_PENDING_HANDSHAKES = 128
MAX_HANDSHAKES_PER_ADDRESS = 8
#: Bytes we buffer for a peer that does not read. A pusher waits at 1 MiB (the
#: high-water mark) so an honest reader never gets near this.
WRITE_HARD_LIMIT = 8 * 1024 * 1024
#: Pings answered: a burst of PING_BURST, then PINGS_PER_SECOND. A peer pings every
#: few seconds; faster than this is a flood and the connection is closed.
PING_BURST = 20
PINGS_PER_SECOND = 5.0
#: Pongs are not written while this many bytes wait for the peer: it is not reading.
PONG_BUFFER_LIMIT = 256 * 1024

# -- invites (chat/pub.py) -------------------------------------------------------------

#: Invite redemptions tried per IP address: a burst, then one per INVITE_INTERVAL
#: seconds. A member redeems once; a guesser is slowed to a crawl.
INVITE_BURST = 5
INVITE_INTERVAL = 2.0
#: Addresses whose redemption budget is tracked at once (oldest dropped first).
MAX_INVITE_ADDRESSES = 1_000
