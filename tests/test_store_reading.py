"""Read marks, the private-conversation index and full-text search, on real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from store.db import PrivateIndexRow, Store
from store.message import decode_message
from store.schema import MIGRATIONS
from store.search import fts_query, post_text
from tests.test_store import ALICE, BOB, A, B, chain, post, posts, raws


async def test_read_marks_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with await Store.open(path) as store:
        assert await store.read_marks() == {}
        await store.save_read_mark("general", 7)
        await store.save_read_mark("general", 9)
        await store.save_read_mark("@abcd", 3)
    async with await Store.open(path) as store:
        assert await store.read_marks() == {"general": 9, "@abcd": 3}


async def test_unread_counts_leave_out_our_own_posts(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "db.sqlite") as store:
        await store.add_received(raws(posts(ALICE, 3)))
        for i in range(2):
            await store.append_own(BOB, post(f"mine {i}"))
        assert await store.count_posts_since("general", 0) == 5
        assert await store.count_posts_since("general", 0, exclude_author=B) == 3


def mentioning(text: str, *feeds: bytes) -> dict[str, Any]:
    return {**post(text), "mentions": list(feeds)}


async def test_unread_mentions_are_counted_from_the_mentions_index(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    contents = [mentioning("hi B", B), post("mentions nobody"), mentioning("A and B", A, B)]
    async with await Store.open(path) as store:
        await store.add_received(raws(chain(ALICE, contents)))
        await store.append_own(BOB, mentioning("me, myself", B))
        assert await store.count_mentions_since("general", 0, B) == 3
        assert await store.count_mentions_since("general", 0, B, exclude_author=B) == 2
        assert await store.count_mentions_since("general", 0, A) == 1
        assert await store.count_mentions_since("dev", 0, B) == 0
        first = (await store.timeline("general", None, 1))[0]  # the newest
        assert await store.count_mentions_since("general", first.arrival, B) == 0
    # A database from before the mentions index: the migration indexes what is there.
    mentions_step = next(i for i, m in enumerate(MIGRATIONS) if "mentions (" in " ".join(m))
    db = sqlite3.connect(path)
    db.executescript(
        "DROP TABLE mentions; DROP TABLE parted_channels; DROP TABLE history_overrides;"
        f" PRAGMA user_version = {mentions_step};"  # the steps after it, undone too
    )
    db.close()
    async with await Store.open(path) as store:
        assert await store.count_mentions_since("general", 0, B, exclude_author=B) == 2


async def test_parted_channels_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with await Store.open(path) as store:
        await store.set_parted("dev", True)
        await store.set_parted("dev", True)
        await store.set_parted("random", True)
        await store.set_parted("random", False)
    async with await Store.open(path) as store:
        assert await store.parted_channels() == {"dev"}


async def test_posts_are_searchable_as_they_arrive(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "db.sqlite") as store:
        texts = ["the quick brown fox", "a lazy dog", "Quick thinking", "café au lait"]
        await store.add_received(raws(chain(ALICE, [post(t) for t in texts])))
        await store.append_own(BOB, post("quickly now", "dev"))
        hits = await store.search("quick")
        found = [post_text(h.raw) for h in hits]
        # every word a prefix match on the last word, newest arrival first, case-folded
        assert found == ["quickly now", "Quick thinking", "the quick brown fox"]
        assert hits[0].channel == "dev" and hits[0].conversation is None
        assert [post_text(h.raw) for h in await store.search("brown qu")] == ["the quick brown fox"]
        assert [post_text(h.raw) for h in await store.search("cafe")] == ["café au lait"]
        assert await store.search("nothing like it") == []
        assert await store.search("   ") == []


async def test_search_words_are_never_parsed_as_fts_operators(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "db.sqlite") as store:
        await store.add_received(raws(chain(ALICE, [post('say "NEAR" AND (or) *not* ^x')])))
        for text in ['"NEAR"', "AND", "(or)", "*not*", "^x", "text:", '"']:
            await store.search(text)  # no sqlite3.OperationalError
        assert len(await store.search("near and")) == 1
    assert fts_query('a "b"') == '"a" """b"""*'


async def test_the_migration_indexes_posts_already_stored(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    async with await Store.open(path) as store:
        await store.add_received(raws(posts(ALICE, 5)))
    # Take the database back to before the search migration, as an older treechat left it.
    search_step = next(i for i, m in enumerate(MIGRATIONS) if "search_text" in " ".join(m))
    db = sqlite3.connect(path)
    db.executescript(
        "DROP TABLE search_text; DROP TABLE private_index;"
        # the steps after it, undone too (today's schema has no index triggers)
        " ALTER TABLE peer_clocks DROP COLUMN saved_at;"
        " DROP TABLE mentions; DROP TABLE parted_channels;"
        " DROP TABLE history_overrides;"
        f" PRAGMA user_version = {search_step};"
    )
    db.close()
    async with await Store.open(path) as store:
        assert [post_text(h.raw) for h in await store.search("general")] == [
            f"general {i}" for i in range(5, 0, -1)
        ]


async def test_posts_are_indexed_once_after_the_triggers_are_gone(tmp_path: Path) -> None:
    """A database from when triggers filed posts (version 9): the migration drops them
    and the store files each post itself, so nothing is indexed twice or missed."""
    path = tmp_path / "db.sqlite"
    feed = raws(chain(ALICE, [post("before"), post("other", "dev"), mentioning("after, B", B)]))
    async with await Store.open(path) as store:
        await store.add_received(feed[:2])
    triggers_step = next(i for i, m in enumerate(MIGRATIONS) if "messages_search" in m[0])
    db = sqlite3.connect(path)
    db.create_function("post_text", 1, post_text)
    db.create_function("post_mentions", 1, lambda raw: "[]")
    for statement in (MIGRATIONS[3][2], MIGRATIONS[5][2]):  # the two triggers, as created
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {triggers_step}")
    db.commit()
    db.close()
    async with await Store.open(path) as store:
        await store.add_received(feed[2:])
        names = await store._fetch("SELECT name FROM sqlite_master WHERE type = 'trigger'", (), "")
        assert names == []
        assert [post_text(h.raw) for h in await store.search("after")] == ["after, B"]
        assert [post_text(h.raw) for h in await store.search("before")] == ["before"]
        assert await store.count_mentions_since("general", 0, B) == 1


async def test_private_messages_are_indexed_by_conversation_and_searchable(
    tmp_path: Path,
) -> None:
    async with await Store.open(tmp_path / "db.sqlite") as store:
        boxes = chain(ALICE, [b"sealed one", b"sealed two", b"sealed three"])
        await store.add_received(raws(boxes))
        private = await store.private_messages(0)
        assert len(private) == 3
        upto = private[-1][0]
        assert await store.private_index_cursor() == 0
        rows = [
            PrivateIndexRow(private[0][0], "@bob", A, "see you at noon"),
            PrivateIndexRow(private[2][0], "@bob", A, "noon is fine"),
        ]
        await store.index_private(rows, upto)
        assert await store.private_index_cursor() == upto
        hits = await store.search("noon")
        assert [h.conversation for h in hits] == ["@bob", "@bob"]
        assert hits[0].arrival == private[2][0] and hits[0].channel is None
        stats = await store.conversations(exclude_author=B)
        assert [(s.conversation, s.messages, s.unread) for s in stats] == [("@bob", 2, 2)]
        await store.save_read_mark("@bob", private[0][0])
        stats = await store.conversations(exclude_author=B)
        assert stats[0].unread == 1
        assert (await store.conversations(exclude_author=A))[0].unread == 0
        listed = await store.conversation_messages("@bob")
        assert [m.content for _, m in listed] == [b"sealed one", b"sealed three"]
        assert decode_message(listed[0][1].raw).author == A
