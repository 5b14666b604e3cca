"""Child process for tests/test_crash.py: appends to a store in a loop until it is killed.

Usage: ``python -m tests.crash_writer DB_PATH SEED``. Prints ``ready`` once the first
write is committed, then keeps writing own messages and batches of received messages.
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Any

from nacl.signing import SigningKey

from store.db import Store
from store.message import create_message

OWN = SigningKey(b"o" * 32)
REMOTES = [SigningKey(bytes([i]) * 32) for i in range(1, 7)]
PEER = b"p" * 32


def content(rng: random.Random, seq: int) -> dict[str, Any] | bytes:
    roll = rng.random()
    if roll < 0.6:
        return {
            "type": "post",
            "text": f"message {seq} " + "x" * rng.randint(0, 600),
            "channel": "crash",
        }
    if roll < 0.7:
        return {"type": "about", "name": f"name {seq}"}
    if roll < 0.8:
        other = bytes(rng.choice(REMOTES).verify_key)
        return {"type": "contact", "contact": other, "following": rng.random() < 0.5}
    if roll < 0.9:
        return rng.randbytes(rng.randint(1, 300))
    return {"type": "unknown-kind", "n": seq}


async def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    store = await Store.open(path)
    await store.append_own(OWN, content(rng, 0))
    print("ready", flush=True)
    while True:
        await store.append_own(OWN, content(rng, 0))
        batch: list[bytes] = []
        for key in rng.sample(REMOTES, 3):
            head = await store.head(bytes(key.verify_key))
            seq, prev = (0, None) if head is None else (head.seq, head.id)
            for _ in range(rng.randint(1, 40)):
                seq += 1
                message = create_message(key, seq, prev, seq, content(rng, seq))
                prev = message.id
                batch.append(message.raw)
        result = await store.add_received(batch, source=PEER)
        if result.errors or len(result.stored) != len(batch):
            raise SystemExit(f"unexpected rejection: {result.errors}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
