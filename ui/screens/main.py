"""The main screen: channels and peers, the conversation, the replication pane and the input line.

Node events arrive as callbacks, possibly thousands a second during a download. The
callback only records *what* changed; a short timer then refreshes each changed part
once (toolong's coalescing idea), and the network figures are redrawn on a slow timer.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static

from chat.content import DEFAULT_CHANNEL
from chat.errors import UserError
from chat.history import describe_history, history_words
from chat.views import (
    CONVERSATION_PREFIX,
    ChannelInfo,
    ConversationInfo,
    NodeEvent,
    Relation,
    SearchHit,
    TimelineEntry,
    conversation_people,
    conversation_view,
)
from ui.commands import (
    Command,
    CommandError,
    Connect,
    Contact,
    ContactAction,
    Doctor,
    Help,
    Join,
    Me,
    Nick,
    Part,
    PrivateMessage,
    Query,
    Quit,
    Say,
    Search,
    SetHistory,
    ShowHistory,
    ShowPeers,
    SwitchChannel,
    Whisper,
    WhoAmI,
    Whois,
    help_text,
    parse_line,
)
from ui.notify import Notifier
from ui.port import ChatNode
from ui.screens.doctor import DoctorScreen, doctor_summary
from ui.screens.help import HelpScreen
from ui.screens.search import SearchScreen
from ui.widgets.chat_input import ChatInput
from ui.widgets.conversation import Conversation
from ui.widgets.nearby import NearbyLine
from ui.widgets.replication import ReplicationPane
from ui.widgets.sidebar import ChannelList, PeerList, conversation_label, peer_reason

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error, see the log"
FLUSH_INTERVAL = 0.2
"""Seconds between coalesced redraws of what node events marked as changed."""
NETWORK_INTERVAL = 1.0
"""Seconds between redraws of rates and peer states (they change without events)."""
AWAY_AFTER = 300.0
"""Seconds without typing before our presence says "away" (docs/ephemeral.md)."""
NARROW_WIDTH = 110
"""Below this many columns the replication pane starts hidden (F3 shows it)."""

CONTACT_DONE = {
    ContactAction.FOLLOW: "following {}",
    ContactAction.UNFOLLOW: "no longer following {}",
    ContactAction.BLOCK: "blocked {}",
    ContactAction.UNBLOCK: "unblocked {}",
}


def describe_error(exc: BaseException) -> str:
    """The words shown for a failed action: a `UserError`'s own message. Anything else
    is a bug, not the user's mistake: its traceback goes to the log (tui.log) and the
    screen says so."""
    if isinstance(exc, UserError):
        text = str(exc).strip()
        return text or type(exc).__name__.replace("Error", " error").strip().lower()
    log.error("internal error", exc_info=(type(exc), exc, exc.__traceback__))
    return INTERNAL_ERROR


def own_host_port(address: str) -> str:
    """`192.168.1.20:7708` from `net:192.168.1.20:7708~shs:KEY` (what fits a pane border)."""
    return address.removeprefix("net:").split("~", 1)[0]


def _mention_name(node: ChatNode, key: bytes) -> str:
    """How to name a person in a command: their name if it is unique, else their key."""
    name = node.display_name(key)
    plain = name.split(" (", 1)[0]
    try:
        if node.resolve_name(plain) == key:
            return plain
    except ValueError:
        pass
    return "@" + base64.b64encode(key).decode() + ".ed25519"


class MainScreen(Screen[None]):
    """The chat screen; it owns the node subscription and turns commands into node calls."""

    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("f2", "toggle_sidebar", "Channels"),
        Binding("f3", "toggle_replication", "Replication"),
        Binding("ctrl+n", "next_unread", "Next unread"),
        Binding("ctrl+f", "search", "Search"),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("escape", "escape", "Select", show=False),
        Binding("ctrl+s", "screenshot", "Screenshot"),
        Binding("f6", "copy_address", "Copy my address"),
        Binding("f10", "toggle_theme", "Light/dark", show=False),
    ]

    def __init__(
        self,
        node: ChatNode,
        *,
        channel: str | None = None,
        tz: tzinfo | None = None,
        now: Callable[[], float],
        screenshot_dir: str,
        notifier: Notifier | None = None,
    ) -> None:
        super().__init__()
        self.notifier = notifier or Notifier(enabled=False)
        self.node = node
        self.channel = channel or ""
        self.tz = tz
        self.now = now
        self.screenshot_dir = screenshot_dir
        self.reply_to: TimelineEntry | None = None
        self.errors: list[str] = []
        """Errors shown so far, newest last (the last 50)."""
        self._dirty: set[str] = set()
        self._pending_errors: list[str] = []
        self._pending_info: list[str] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._hint_shown = False  # the first screen's hint is on the status line
        self._channel_names: list[str] = []
        self.channel_infos: list[ChannelInfo] = []
        self.conversation_infos: list[ConversationInfo] = []
        self._alerts: dict[str, int] | None = None  # view -> DMs or mentions counted
        self._names_seen: list[str] = []
        self._flushing = False
        self._last_typed = time.monotonic()  # for "away" after AWAY_AFTER idle seconds

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield ChannelList(id="channels")
                yield PeerList(id="peers", tz=self.tz)
            with Vertical(id="middle"):
                yield Conversation(
                    self._timeline,
                    self.node.feed_id,
                    namer=self.node.display_name,
                    tz=self.tz,
                    id="conversation",
                    older=(self.node.older_history, self.node.fetch_older),
                )
                yield NearbyLine(id="nearby")
                yield Static("", id="reply-bar")
                yield Static("", id="status")
                yield ChatInput(
                    names=self.node.known_names,
                    channels=lambda: self._channel_names,
                    placeholder="Message, or /help",
                    id="input",
                )
            yield ReplicationPane(self.node.display_name, tz=self.tz, id="replication")
        yield Footer()

    async def _timeline(self, view: str, before: int | None, limit: int) -> list[TimelineEntry]:
        """A channel's posts, or a private conversation's messages."""
        if is_conversation(view):
            return await self.node.conversation(view, before, limit)
        return await self.node.timeline(view, before, limit)

    @property
    def conversation(self) -> Conversation:
        return self.query_one("#conversation", Conversation)

    @property
    def input(self) -> ChatInput:
        return self.query_one("#input", ChatInput)

    @property
    def replication(self) -> ReplicationPane:
        return self.query_one("#replication", ReplicationPane)

    async def on_mount(self) -> None:
        if self.app.size.width < NARROW_WIDTH:
            self.replication.display = False
        self.query_one("#reply-bar").display = False
        self.query_one("#nearby").display = False
        self._unsubscribe = self.node.subscribe(self._on_node_event)
        channels = await self.node.channels()
        if not self.channel:
            names = {c.name for c in channels}
            if DEFAULT_CHANNEL in names or not channels:
                self.channel = DEFAULT_CHANNEL
            else:
                self.channel = max(channels, key=lambda c: c.last_timestamp).name
        await self.switch_channel(self.channel, lists=False)
        # The lists wait for the first pass over private messages (a second on a big
        # first open): drawn after the first refresh, so the conversation is painted first.
        self.call_after_refresh(self.refresh_channels)
        if not any(p.state == "connected" for p in self.node.peers()) and not (
            await self.node.timeline(self.channel, None, 1)
        ):
            self.show_info(self.first_screen_hint())
            self._hint_shown = True
        self.refresh_network()
        self.set_interval(FLUSH_INTERVAL, self.flush)
        self.set_interval(NETWORK_INTERVAL, self.refresh_network)
        self.set_interval(NETWORK_INTERVAL, self.refresh_nearby)  # typing fades by time
        self.input.focus()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ------------------------------------------------------------------ node events

    def _on_node_event(self, event: NodeEvent) -> None:
        """Called by the node, maybe very often: only note what changed."""
        self._dirty.add(event.kind)
        if event.kind == "error" and event.text and len(self._pending_errors) < 20:
            self._pending_errors.append(event.text)
        elif event.kind == "info" and event.text and len(self._pending_info) < 20:
            self._pending_info.append(event.text)

    async def flush(self) -> None:
        """Redraw, once, every part that events marked since the last flush."""
        if self._flushing or not (self._dirty or self._pending_errors or self._pending_info):
            return
        self._flushing = True
        try:
            await self._flush()
        except Exception as exc:  # a failing node read must not take the screen down
            self.show_error(f"could not refresh: {describe_error(exc)}")
        finally:
            self._flushing = False

    async def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        errors, self._pending_errors = self._pending_errors, []
        infos, self._pending_info = self._pending_info, []
        if "messages" in dirty:
            await self.refresh_messages()
        if dirty & {"peers", "links"}:
            self.refresh_network()
            self.conversation.refresh_top()
        if dirty & {"peers", "typing", "whisper"}:
            self.refresh_nearby()
        for text in infos:
            self.show_info(text)
        for text in errors:
            self.show_error(text)

    async def refresh_messages(self) -> None:
        conversation = self.conversation
        names = self.node.known_names()
        if names != self._names_seen:  # an `about` arrived: new names everywhere
            self._names_seen = names
            conversation.rename(self.node.display_name)
            self.conversation.border_title = self.view_title(self.channel)
        await conversation.load_new()
        conversation.older_arrived()
        if conversation.is_following:
            await self.node.mark_read(self.channel)
        await self.refresh_channels()

    async def refresh_channels(self) -> None:
        """Re-read channels and conversations; ring for new DMs and mentions of us."""
        channels = await self.node.channels()
        conversations = await self.node.conversations()
        self.channel_infos, self.conversation_infos = channels, conversations
        self._channel_names = sorted({c.name for c in channels} | {self.channel} - {""})
        self._channel_names = [n for n in self._channel_names if not is_conversation(n)]
        self.query_one("#channels", ChannelList).show(
            channels, self.channel, conversations, self.view_title(self.channel)
        )
        self._alert_on_news(channels, conversations)

    def _alert_on_news(
        self, channels: list[ChannelInfo], conversations: list[ConversationInfo]
    ) -> None:
        alerts = {c.view: c.unread for c in conversations}
        alerts.update({c.name: c.mentions for c in channels})
        previous, self._alerts = self._alerts, alerts
        if previous is None:
            return  # the first look after opening: nothing *arrived*
        grown = [view for view, count in alerts.items() if count > previous.get(view, 0)]
        if grown:
            view = grown[0]
            if is_conversation(view):
                text = f"private message from {self.view_title(view)}"
            else:
                text = f"you were mentioned in #{view}"
            self.notifier.alert(self.app, "treechat", text)

    def view_title(self, view: str) -> str:
        """'#name' for a channel; '✉ names' for a private conversation."""
        if not is_conversation(view):
            return f"#{view}"
        for info in self.conversation_infos:
            if info.view == view:
                return conversation_label(info.title)
        try:
            people = conversation_people(view)
        except ValueError:
            return view
        return conversation_label(", ".join(sorted(self.node.display_name(k) for k in people)))

    def refresh_network(self) -> None:
        try:
            peers = self.query_one("#peers", PeerList)
            rows = self.node.peers()
            peers.show(rows)
            if self._hint_shown and any(p.state == "connected" for p in rows):
                self.show_info("")  # no longer waiting: the hint has done its work
            address = self.node.address
            peers.border_subtitle = f"you: {own_host_port(address)}" if address else ""
            if self.replication.display:
                self.replication.show(
                    self.node.sync_progress(), self.node.links(), self.node.feeds()
                )
        except Exception as exc:
            self.show_error(f"could not read the network state: {describe_error(exc)}")

    def refresh_nearby(self) -> None:
        """Whispers and the typing line under the conversation; "here now" in its header."""
        nearby = self.node.ephemeral
        channel = self.channel
        if time.monotonic() - self._last_typed > AWAY_AFTER:
            nearby.set_away(True)
        self.query_one("#nearby", NearbyLine).show(
            nearby.whispers_in(channel), nearby.typing_names(channel), channel
        )
        if not is_conversation(channel):  # the subtitle is the conversation's (name clashes)
            here = nearby.here_now(channel)
            shown = f" · here now: {', '.join(here)}" if len(here) > 1 else ""
            self.conversation.border_title = f"{self.view_title(channel)}{shown}"

    def on_input_changed(self, event: Input.Changed) -> None:
        """Tell people nearby we are typing (not for commands, not in the private view)."""
        self._last_typed = time.monotonic()
        self.node.ephemeral.set_away(False)
        text = event.value
        if text.strip() and not text.startswith("/") and not is_conversation(self.channel):
            self.node.ephemeral.typing_in(self.channel)

    # ------------------------------------------------------------------ status line

    def show_error(self, text: str) -> None:
        """Show an error in plain words on the status line and as a notification."""
        self._hint_shown = False
        self.errors.append(text)
        del self.errors[:-50]
        status = self.query_one("#status", Static)
        status.update(f"⚠ {text}")
        status.set_class(True, "-error")
        self.notify(text, title="Error", severity="error", timeout=6)

    def action_copy_address(self) -> None:
        """/whoami and F6: who we are, where to dial us; copied (OSC 52) and saved to a file,
        for terminals that refuse the clipboard."""
        address = self.node.address or "(not listening)"
        self.app.copy_to_clipboard(address)
        saved = ""
        try:
            path = Path(self.screenshot_dir) / "treechat-address.txt"
            path.write_text(f"{self.node.ref}\n{address}\n")
            saved = f"; also saved to {path}"
        except OSError as exc:
            log.info("could not save the address: %s", exc)
        self.show_info(f"you are {self.node.ref} at {address} (copied{saved})")

    def first_screen_hint(self) -> str:
        """What to do next, for a channel with no posts and nobody connected yet; in short
        lines (the status line wraps to four), so even an 80-column screen shows it all."""
        address = self.node.address
        you = f"\nyour address (F6 copies it):\n{address}" if address else ""
        return f"waiting for peers on the LAN · or /join INVITE{you}"

    def show_info(self, text: str) -> None:
        self._hint_shown = False
        status = self.query_one("#status", Static)
        status.update(text)
        status.set_class(False, "-error")

    # ------------------------------------------------------------------ channels

    async def switch_channel(self, channel: str, *, lists: bool = True) -> None:
        """Show a channel or a private conversation, with a rule above what is unread
        (and redraw the channel list unless `lists` is False)."""
        unread, read_upto = 0, 0
        if is_conversation(channel):
            for info in await self.node.conversations():
                if info.view == channel:
                    unread, read_upto = info.unread, info.read_upto
        else:
            await self.node.join_channel(channel)  # showing a channel you left joins it
            for chan in await self.node.channels():
                if chan.name == channel:
                    unread, read_upto = chan.unread, chan.read_upto
        self.channel = channel
        conversation = self.conversation
        conversation.border_title = self.view_title(channel)
        await conversation.show_channel(channel, unread, read_upto=read_upto)
        await self.node.mark_read(channel)
        self._cancel_reply()
        self.node.ephemeral.set_here("" if is_conversation(channel) else channel)
        self.refresh_nearby()
        if lists:
            await self.refresh_channels()

    async def on_channel_list_channel_chosen(self, event: ChannelList.ChannelChosen) -> None:
        if event.channel != self.channel:
            await self.switch_channel(event.channel)
        self.input.focus()

    # ------------------------------------------------------------------ input

    async def on_chat_input_line(self, event: ChatInput.Line) -> None:
        """One sent line; lines are handled one at a time, in the order they were typed."""
        if event.pasted:
            await self.run_command(Say(event.text))
            return
        try:
            command = parse_line(event.text)
        except CommandError as exc:
            self.show_error(str(exc))
            return
        await self.run_command(command)

    def on_chat_input_paste_changed(self, event: ChatInput.PasteChanged) -> None:
        if event.error:
            self.show_error(event.text)
        else:
            self.show_info(event.text)

    def on_key(self, event: events.Key) -> None:
        """A printable key pressed while focus is elsewhere goes to the input (weechat habit),
        unless the focused widget binds that key (r = reply on a selected message)."""
        focused = self.focused
        if not event.is_printable or event.character is None or focused is self.input:
            return
        if focused is not None and (
            isinstance(focused, Input)
            or any(
                event.key in node._bindings.key_to_bindings
                for node in focused.ancestors_with_self
                if isinstance(node, Widget) and not isinstance(node, Screen)
            )
        ):
            return
        event.stop()
        event.prevent_default()
        self.input.insert_text_at_cursor(event.character)
        self.app.set_focus(self.input)

    async def run_command(self, command: Command) -> None:
        """Carry out one parsed command; any failure is shown, never raised."""
        try:
            await self._run(command)
        except Exception as exc:
            self.show_error(describe_error(exc))

    async def _run(self, command: Command) -> None:
        node = self.node
        match command:
            case Say(text) if is_conversation(self.channel):
                await node.send_private(list(conversation_people(self.channel)), text)
                await self._show_own_message()
            case Say(text):
                reply = self.reply_to.msg_id if self.reply_to else None
                await node.post(text, self.channel, reply_to=reply)
                self._cancel_reply()
                await self._show_own_message()
            case Me(text):
                await self._run(Say(f"/me {text}"))
            case Part(name):
                channel = name or self.channel
                if is_conversation(channel):
                    raise CommandError("/part leaves a channel; a conversation stays listed")
                others = [n for n in self._channel_names if n not in (channel, DEFAULT_CHANNEL)]
                if channel != DEFAULT_CHANNEL:  # where /part lands: #general first
                    others.insert(0, DEFAULT_CHANNEL)
                if channel == self.channel and not others:
                    raise CommandError(f"#{channel} is your only channel: /join another first")
                await node.mark_read(channel)
                await node.part_channel(channel)
                if channel == self.channel:
                    await self.switch_channel(others[0])
                await self.refresh_channels()
                self.show_info(f"left #{channel}; /join #{channel} to come back")
            case Whois(who):
                key = node.resolve_name(who)
                self.show_whois(key, await node.relation(key))
            case Nick(name):
                await node.set_name(name)
                self.show_info(f"you are now {name}")
            case SwitchChannel(name):
                await self.switch_channel(name)
                self.show_info(f"now in #{name}")
            case PrivateMessage(recipients, text):
                keys = [node.resolve_name(r) for r in recipients]
                await node.send_private(keys, text)
                if self.channel == conversation_view(set(keys) - {node.feed_id}):
                    await self._show_own_message()
                else:
                    await self.refresh_channels()
                self.show_info(f"private message sent to {', '.join(recipients)}")
            case Query(recipients, text):
                people = {node.resolve_name(r) for r in recipients}
                await self.switch_channel(conversation_view(people - {node.feed_id} or people))
                if text:
                    await self._run(Say(text))
                self.show_info(f"private conversation with {', '.join(recipients)}")
            case Contact(action, who):
                key = node.resolve_name(who)
                method = {
                    ContactAction.FOLLOW: node.follow,
                    ContactAction.UNFOLLOW: node.unfollow,
                    ContactAction.BLOCK: node.block,
                    ContactAction.UNBLOCK: node.unblock,
                }[action]
                await method(key)
                if action is ContactAction.BLOCK:
                    self.conversation.hide_author(key)  # their posts leave the screen now
                elif action is ContactAction.UNBLOCK:
                    await self.conversation.show_channel(self.channel)
                self.show_info(CONTACT_DONE[action].format(node.display_name(key)))
            case ShowHistory(None):
                default, settings = node.history_settings()
                apart = [
                    f"{node.display_name(s.feed)}: {history_words(s.keep)}"
                    for s in sorted(settings, key=lambda s: node.display_name(s.feed))
                ]
                self.show_info(
                    f"history: {history_words(default)} of each feed"
                    + (f"; {', '.join(apart)}" if apart else "")
                    + " — /history NAME N|all|default"
                )
            case ShowHistory(str() as who):
                key = node.resolve_name(who)
                self.show_info(describe_history(node.display_name(key), node.history_setting(key)))
            case SetHistory(who, keep, default):
                key = node.resolve_name(who)
                if default:
                    await node.reset_history(key)
                else:
                    await node.set_history(key, keep)
                self.show_info(describe_history(node.display_name(key), node.history_setting(key)))
            case ShowPeers():
                self.query_one("#sidebar").display = True
                peers = node.peers()
                self.query_one("#peers", PeerList).show(peers)
                self.query_one("#peers", PeerList).focus()
                connected = sum(1 for p in peers if p.state == "connected")
                self.show_info(
                    f"{len(peers)} peers: {connected} connected, {len(peers) - connected} not"
                )
            case Connect(address, follow):
                self.show_info(f"connecting to {address}…")
                self._dial(address, follow)
            case WhoAmI():
                self.action_copy_address()
            case Join(invite):
                self.show_info("redeeming the invite…")
                self._join(invite)
            case Search(text):
                self.open_search(text)
            case Whisper(text):
                if is_conversation(self.channel):
                    raise CommandError("whispers go to a channel; switch to one with /ch NAME")
                node.ephemeral.whisper(self.channel, text)
                self.refresh_nearby()
                self.show_info("whispered to people nearby: no name attached, never stored")
            case Doctor():
                self.show_info("doctor: checking…")
                self._doctor()
            case Help(topic) if topic:
                # One command's usage fits the status line; no dialog to swallow keys.
                self.show_info(" — ".join(line.strip() for line in help_text(topic).splitlines()))
            case Help():
                await self.app.push_screen(HelpScreen())
            case Quit():
                self.app.exit()

    async def _show_own_message(self) -> None:
        """After we wrote to the current view: show it at the bottom, all read."""
        self.conversation.clear_unread_marker()
        await self.conversation.load_new()
        await self.conversation.jump_to_latest()
        await self.node.mark_read(self.channel)
        await self.refresh_channels()
        self.show_info("")

    @work(group="doctor", exclusive=True, exit_on_error=False)
    async def _doctor(self) -> None:
        try:
            findings = await self.node.doctor()
        except Exception as exc:
            self.show_error(f"the doctor could not run: {describe_error(exc)}")
            return
        self.show_info(doctor_summary(findings))
        await self.app.push_screen(DoctorScreen(findings))

    @work(group="dial", exit_on_error=False)
    async def _dial(self, address: str, follow: bool = True) -> None:
        try:
            await self.node.connect(address, follow=follow)
        except Exception as exc:
            self.show_error(f"could not connect to {address}: {describe_error(exc)}")
        else:
            self.show_info(f"connected to {address}")
            self.refresh_network()

    @work(group="join", exit_on_error=False)
    async def _join(self, invite: str) -> None:
        try:
            await self.node.join(invite)
        except Exception as exc:
            self.show_error(f"could not join: {describe_error(exc)}")
        else:
            self.show_info("joined the pub; replication starts now")
            self.refresh_network()

    # ------------------------------------------------------------------ replies, provenance

    def on_conversation_reply_requested(self, event: Conversation.ReplyRequested) -> None:
        if event.entry.private and is_conversation(self.channel):
            self.input.focus()  # a line typed here goes to this conversation
            return
        if event.entry.private:
            # Private replies go to everyone in the conversation except us.
            people = {event.entry.author, *event.entry.recipients} - {self.node.feed_id}
            names = ",".join(sorted(_mention_name(self.node, k) for k in people))
            self.input.value = f"/msg {names} " if names else "/msg "
            self.input.cursor_position = len(self.input.value)
            self.input.focus()
            return
        self.reply_to = event.entry
        snippet = event.entry.text if len(event.entry.text) <= 50 else event.entry.text[:49] + "…"
        bar = self.query_one("#reply-bar", Static)
        bar.update(f"↳ replying to {event.entry.author_name}: {snippet}  (Esc cancels)")
        bar.display = True
        self.input.focus()

    def _cancel_reply(self) -> None:
        self.reply_to = None
        self.query_one("#reply-bar").display = False
        self.query_one("#nearby").display = False

    async def on_conversation_entry_selected(self, event: Conversation.EntrySelected) -> None:
        self.replication.display = True
        self._fit_panes(keep=self.replication)
        delivery = await self.node.provenance(event.entry.msg_id)
        self.replication.show_provenance(event.entry, delivery)
        self.refresh_network()

    def on_replication_pane_feed_chosen(self, event: ReplicationPane.FeedChosen) -> None:
        self.replication.show_tree(self.node.feed_tree(event.feed))

    def on_replication_pane_link_chosen(self, event: ReplicationPane.LinkChosen) -> None:
        link = next((lk for lk in self.replication.links or [] if lk.peer == event.peer), None)
        if link is not None:
            self.replication.show_link_feeds(link, self.node.feeds())

    def show_whois(self, key: bytes, relation: Relation) -> None:
        """/whois: name, key, follows, replication of their feed and their link, last seen."""
        node = self.node
        lines = [f"{node.display_name(key)}", "@" + base64.b64encode(key).decode() + ".ed25519"]
        if relation.we_block:
            ours = "you block them"
        else:
            ours = "you follow them" if relation.we_follow else "you do not follow them"
        theirs = "they follow you" if relation.they_follow_us else "they do not follow you"
        lines.append(f"{ours}; {theirs}")
        tree = next((t for t in node.feeds() if t.feed == key), None)
        if tree is None:
            lines.append("their feed is not replicated here (not followed, or out of hops)")
        else:
            source = node.display_name(tree.eager_source) if tree.eager_source else "nobody"
            lines.append(f"feed: {tree.local_seq} messages held; eager from {source}")
            if tree.lazy_peers:
                lazy = ", ".join(node.display_name(k) for k in tree.lazy_peers)
                lines.append(f"also announced (lazy) by {lazy}")
        peer = next((p for p in node.peers() if p.key == key), None)
        if peer is None:
            lines.append("not one of our peers")
        else:
            reason = peer_reason(peer)
            why = f" ({reason})" if reason else ""
            lines.append(f"peer: {peer.state} via {peer.source}{why}")
        if peer is not None and peer.presence in ("online", "away"):
            lines.append(f"now {peer.presence}")
        elif peer is not None and peer.last_seen is not None:
            when = datetime.fromtimestamp(peer.last_seen, tz=self.tz)
            lines.append(f"last seen {when:%d %b %H:%M}")
        else:
            lines.append("last seen: never heard from them")
        self.replication.display = True
        self._fit_panes(keep=self.replication)
        self.replication.show_message("\n".join(lines))
        self.show_info(f"whois {node.display_name(key)}: see the details box (F3 hides it)")

    # ------------------------------------------------------------------ search

    def open_search(self, text: str = "") -> None:
        """Show the search dialog (prefilled with `text`); a chosen result is opened."""
        screen = SearchScreen(self.node.search, self.view_title, query=text, tz=self.tz)
        self.app.push_screen(screen, self._open_hit)

    async def _open_hit(self, hit: SearchHit | None) -> None:
        if hit is None:
            self.input.focus()
            return
        if hit.view != self.channel or not await self.conversation.reveal(hit.entry.msg_id):
            await self.switch_channel(hit.view)
            if not await self.conversation.reveal(hit.entry.msg_id):
                self.show_error("that message is no longer in its conversation")
                return
        self.conversation.focus()
        when = datetime.fromtimestamp(hit.entry.timestamp / 1000, tz=self.tz)
        self.show_info(
            f"{hit.entry.author_name}, {when:%d %b %H:%M} in {self.view_title(hit.view)}"
            " · Esc back to the input"
        )

    # ------------------------------------------------------------------ key actions

    def action_search(self) -> None:
        self.open_search()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display
        self._fit_panes(keep=sidebar)

    def action_toggle_replication(self) -> None:
        """F3: show the replication pane with its links list focused (so `?` explains it;
        typing still goes to the input), or hide it."""
        pane = self.replication
        pane.display = not pane.display
        self._fit_panes(keep=pane)
        if pane.display:
            self.refresh_network()
            pane.query_one("#links").focus()
        elif self.focused is None or pane in self.focused.ancestors_with_self:
            self.input.focus()

    def _fit_panes(self, keep: Widget | None = None) -> None:
        """Below NARROW_WIDTH the side panes take turns (showing one hides the other), so
        the conversation is never squeezed and no pane is pushed off the screen."""
        if self.app.size.width >= NARROW_WIDTH:
            return
        sidebar, pane = self.query_one("#sidebar"), self.replication
        if sidebar.display and pane.display:
            (pane if keep is sidebar else sidebar).display = False

    def on_resize(self, event: events.Resize) -> None:
        self._fit_panes(keep=self.replication if self.replication.display else None)

    def action_toggle_theme(self) -> None:
        self.app.theme = "textual-light" if self.app.current_theme.dark else "textual-dark"

    def action_page(self, direction: int) -> None:
        if direction < 0:
            self.conversation.scroll_page_up(animate=False)
        else:
            self.conversation.scroll_page_down(animate=False)

    async def action_next_unread(self) -> None:
        """Go to unread private conversations first, then channels that mention us, then
        the next channel with unread posts (after the current one, wrapping around)."""
        conversations = await self.node.conversations()
        channels = sorted(await self.node.channels(), key=lambda c: c.name)
        private = [c.view for c in conversations if c.unread and c.view != self.channel]
        mentioned = [c.name for c in channels if c.mentions and c.name != self.channel]
        unread = [c.name for c in channels if c.unread and c.name != self.channel]
        if private or mentioned:
            await self.switch_channel((private or mentioned)[0])
            return
        if not unread:
            self.show_info("no unread messages")
            return
        later = [name for name in unread if name > self.channel]
        await self.switch_channel((later or unread)[0])

    def action_escape(self) -> None:
        if self.input.drop_paste():
            return
        if self.reply_to is not None:
            self._cancel_reply()
            return
        conversation = self.conversation
        if conversation.has_focus:
            self.input.focus()
        else:
            conversation.focus()
            if conversation.cursor is None:
                conversation.action_cursor(-1)

    def action_screenshot(self) -> None:
        stamp = datetime.fromtimestamp(self.now(), tz=self.tz).strftime("%Y%m%d-%H%M%S")
        path = self.app.save_screenshot(f"treechat-{stamp}.svg", self.screenshot_dir)
        self.show_info(f"screenshot saved to {path}")


def is_conversation(view: str) -> bool:
    """True for a private conversation's view name, False for a channel."""
    return view.startswith(CONVERSATION_PREFIX)
