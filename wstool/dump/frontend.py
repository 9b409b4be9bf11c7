"""``frame-dump`` front-end: decode captured bytes, or relay and print both directions.

Offline (``frame-dump FILE|-``) the input is read in chunks and fed to the pure
decoder (``frames.py``); each record is rendered as soon as it is decoded
(``render.py`` "Frames"), so a large or endless input streams. Live
(``frame-dump --listen HOST:PORT URL``) the relay core (``relay.py``) forwards
bytes unchanged and emits events, rendered here the same way. From a capture
(``frame-dump --pcap FILE``) ``pcap.py`` reassembles the TCP connections and
each one that starts with a WebSocket upgrade is decoded in both directions.

Human output goes to stdout, with rich colour only when stdout is a terminal;
``--json`` writes one object per line (README "frame-dump"). Diagnostics go to
stderr through ``wstool/cli/``, which also builds the records this module runs
on (``options.frame_dump_plan``).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wstool.config import DEFAULT_MAX_BUFFER_BYTES
from wstool.errors import ExitStatus, ProtocolFailure, WstoolError
from wstool.protocol.frames import Decoded, DecodeError, FrameDecoder, HttpHead, Side, parse_hex
from wstool.term.env import Environment
from wstool.term.jsonl import write_json_line
from wstool.term.palette import MARKER_STYLES
from wstool.term.render import (
    JsonObject,
    escape,
    frame_detail_lines,
    frame_hexdump_lines,
    frame_json,
    frame_line,
    http_head_json,
    http_head_lines,
    message_json,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO

    from rich.console import Console

    from wstool.dump.events import RelayEvent
    from wstool.dump.relay import RelayConfig

READ_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class DumpConfig:
    """What ``frame-dump`` shows and how (built at the CLI edge)."""

    direction: Side | None = None  # --from
    # --max-size: payload bytes kept per frame or message, longer ones are
    # summarised (a buffering bound, not a message limit; None: no bound).
    max_buffer_bytes: int | None = DEFAULT_MAX_BUFFER_BYTES
    payload_limit: int | None = 64  # --payload N (None: no limit)
    hexdump: bool = False  # -x/--hexdump
    json: bool = False  # --json
    show_secrets: bool = True
    # Protocol problems found make the exit status 6 (issue 10: CI runs
    # `wstool frame-dump capture.bin || fail`); --no-fail turns that off.
    fail_on_problems: bool = True


@dataclass(frozen=True)
class OfflineSource:
    """``frame-dump FILE|-``: one direction of a stream, raw bytes or --hex text."""

    path: str  # a file, or "-" for stdin
    hex_input: bool = False




class FrameWriter:
    """Renders decoded records (and relay events) to stdout, flushed per batch."""

    def __init__(self, env: Environment, cfg: DumpConfig) -> None:
        self.env = env
        self.cfg = cfg
        self.out = env.stdout
        self.console: Console | None = None
        if not cfg.json and env.color_for(env.stdout_isatty):
            self.console = env.stdout_console()
        self.frames = 0
        self.problems = 0  # protocol problems (`!` lines of frames, relay: undecodable streams)

    def write_lines(self, lines: list[str], prefix_len: int = 0) -> None:
        if self.console is not None:
            from rich.text import Text

            for line in lines:
                key = line[prefix_len : prefix_len + 1] if line else " "
                self.console.print(Text(line, style=MARKER_STYLES.get(key, "")))
            return
        if lines:
            self.out.write(("\n".join(lines) + "\n").encode("utf-8", "backslashreplace"))

    def write_json(self, obj: JsonObject) -> None:
        write_json_line(self.out, obj)

    def tally(self, item: Decoded) -> None:
        """Count a frame and its problems (apart from rendering: a relay whose
        stdout is gone still counts, for its exit status)."""
        if not isinstance(item, HttpHead):
            self.frames += 1
            self.problems += len(item.problems)

    def record(self, item: Decoded, *, conn: int | None = None) -> None:
        self.tally(item)
        self.render(item, conn=conn)

    def render(self, item: Decoded, *, conn: int | None = None) -> None:
        prefix = f"#{conn} " if conn is not None else f"@{item.offset} "
        if isinstance(item, HttpHead):
            if self.cfg.json:
                self.write_json(http_head_json(item, conn=conn))
            else:
                self.write_lines(http_head_lines(item, prefix=prefix,
                                                 show_secrets=self.cfg.show_secrets),
                                 len(prefix))
            return
        if self.cfg.json:
            self.write_json(frame_json(item, conn=conn))
            msg = message_json(item, conn=conn)
            if msg is not None:
                self.write_json(msg)
            return
        limit = self.cfg.payload_limit
        lines = [frame_line(item, payload_limit=limit, prefix=prefix)]
        detail_prefix = " " * len(prefix)
        lines += frame_detail_lines(item, payload_limit=limit, prefix=detail_prefix)
        if self.cfg.hexdump:
            lines += frame_hexdump_lines(item, max_bytes=limit)
        self.write_lines(lines, len(prefix))

    def records(self, items: list[Decoded], *, conn: int | None = None) -> None:
        for item in items:
            self.record(item, conn=conn)

    def event(self, obj: JsonObject, line: str, *, conn: int | None = None) -> None:
        """A non-frame event: a JSON object, or one ``=`` line."""
        if self.cfg.json:
            self.write_json(obj)
        else:
            prefix = f"#{conn} " if conn is not None else ""
            self.write_lines([f"{prefix}{line}"], len(prefix))

    def flush(self) -> None:
        if self.console is None:
            self.out.flush()

    def exit_status(self, status: int, *, failing: bool = False) -> int:
        """STATUS, or 6 when problems were found (unless --no-fail); says so on stderr.

        ``failing``: an error follows that sets the status itself (truncated
        input, bytes missing from a capture), so the line does not promise one.
        """
        if not self.problems:
            return status
        count = (f"{self.problems} protocol problem{'s' if self.problems != 1 else ''} in "
                 f"{self.frames} frame{'s' if self.frames != 1 else ''}")
        if failing:
            self.env.write_stderr_line(f"wstool: {count}")
            return status
        if not self.cfg.fail_on_problems:
            self.env.write_stderr_line(f"wstool: {count} (--no-fail: exit {status})")
            return status
        self.env.write_stderr_line(
            f"wstool: {count} (exit {int(ExitStatus.PROTOCOL_ERROR)}; "
            f"--no-fail to exit {status})")
        return ExitStatus.PROTOCOL_ERROR


# What hex text is made of (``parse_hex``): digits, ASCII whitespace, ``,``/``:``
# separators and ``0x`` prefixes. Raw frames almost never are: a first byte of
# 0x30-0x39 or 0x61-0x66 is a non-final frame with RSV bits or a reserved opcode.
_HEX_TEXT_BYTES = b"0123456789abcdefABCDEF \t\n\r\x0b\x0c,:xX"
_HEX_DIGIT_BYTES = b"0123456789abcdefABCDEF"


class _HexTextSniffer:
    """Notices input that is hex text decoded as raw bytes (no --hex): issue 10."""

    def __init__(self) -> None:
        self.all_hex_text = True
        self.digits = False

    def see(self, chunk: bytes) -> None:
        if self.all_hex_text:
            if chunk.translate(None, _HEX_TEXT_BYTES):
                self.all_hex_text = False
            elif not self.digits and len(chunk.translate(None, _HEX_DIGIT_BYTES)) < len(chunk):
                self.digits = True

    def hint(self, env: Environment) -> None:
        if self.all_hex_text and self.digits:
            env.write_stderr_line("wstool: the input looks like hex text: try --hex")


def _read_all(env: Environment, source: OfflineSource) -> Iterator[bytes]:
    """Yield chunks of the input; unreadable files are a one-line error (exit 1)."""
    name = "stdin" if source.path == "-" else source.path
    try:
        stream: IO[bytes] = (env.stdin if source.path == "-"
                             else open(source.path, "rb"))  # noqa: SIM115
    except OSError as exc:
        raise WstoolError(f"cannot read {name}: {exc.strerror or exc}") from None
    # read1: whatever is there, so that a live pipe (nc -l | wstool frame-dump -)
    # shows each frame as it arrives rather than once a whole chunk is in.
    read: Callable[[int], bytes] = getattr(stream, "read1", stream.read)
    try:
        while True:
            try:
                chunk = read(READ_CHUNK_BYTES)
            except OSError as exc:
                raise WstoolError(f"cannot read {name}: {exc.strerror or exc}") from None
            if not chunk:
                return
            yield chunk
    finally:
        if stream is not env.stdin:
            stream.close()


def dump_offline(env: Environment, source: OfflineSource, cfg: DumpConfig) -> int:
    """Decode one direction of a stream from a file or stdin; returns the exit status."""
    writer = FrameWriter(env, cfg)
    decoder = FrameDecoder(direction=cfg.direction, max_buffer_bytes=cfg.max_buffer_bytes)
    chunks = _read_all(env, source)
    sniffer: _HexTextSniffer | None = None
    if source.hex_input:
        # latin-1: one character per byte, so a bad byte is shown as itself.
        text = b"".join(chunks).decode("latin-1")
        try:
            data = parse_hex(text)
        except ValueError as exc:
            raise ProtocolFailure(f"invalid --hex input: {exc}") from None
        chunks = iter([data[i : i + READ_CHUNK_BYTES]
                       for i in range(0, len(data), READ_CHUNK_BYTES)])
    else:
        sniffer = _HexTextSniffer()
    try:
        for chunk in chunks:
            if sniffer is not None:
                sniffer.see(chunk)
            writer.records(decoder.feed(chunk))
            writer.flush()
        decoder.finish()
    except DecodeError as exc:
        if cfg.json:
            writer.write_json({"event": "error", "message": str(exc), "offset": exc.offset})
        writer.flush()
        if sniffer is not None:
            sniffer.hint(env)
        writer.exit_status(exc.exit_status, failing=True)
        raise
    writer.flush()
    if sniffer is not None:
        sniffer.hint(env)
    return writer.exit_status(ExitStatus.OK)


@dataclass(frozen=True)
class DumpPlan:
    """What ``frame-dump`` was asked to do: one of three sources, validated.

    Built at the CLI edge (``wstool.cli.options.frame_dump_plan``).
    """

    cfg: DumpConfig
    source: OfflineSource | None = None
    relay: RelayConfig | None = None
    pcap_path: str | None = None

    async def run(self, env: Environment) -> int:
        if self.relay is not None:
            return await run_relay(env, self.relay, self.cfg)
        if self.pcap_path is not None:
            return dump_pcap(env, self.pcap_path, self.cfg)
        assert self.source is not None
        return dump_offline(env, self.source, self.cfg)


class RelayRenderer:
    """Renders relay events: frames as offline, plus connection lines (``=``, ``!``)."""

    def __init__(self, env: Environment, cfg: DumpConfig) -> None:
        self.env = env
        self.cfg = cfg
        self.writer = FrameWriter(env, cfg)

    def __call__(self, event: RelayEvent) -> None:
        from wstool.dump.events import (
            RelayConnClosed,
            RelayConnOpened,
            RelayDecoded,
            RelayError,
            RelayListening,
        )
        from wstool.events import Notice

        writer = self.writer
        try:
            if isinstance(event, RelayDecoded):
                for record in event.records:
                    writer.tally(record)
                for record in event.records:
                    writer.render(record, conn=event.conn)
            elif isinstance(event, RelayListening):
                url = f"ws://{event.host}:{event.port}/"
                self.env.write_stderr_line(
                    f"wstool: frame-dump relaying {url} -> {event.upstream_url}")
                if self.cfg.json:
                    writer.write_json({"event": "listening", "host": event.host,
                                       "port": event.port, "url": url,
                                       "upstream": event.upstream_url})
            elif isinstance(event, RelayConnOpened):
                writer.event({"event": "open", "conn": event.conn, "peer": event.peer},
                             f"= connection {event.conn} from {escape(event.peer)}",
                             conn=event.conn)
            elif isinstance(event, RelayError):
                if event.protocol:
                    writer.problems += 1
                writer.event({"event": "error", "conn": event.conn, "message": event.message},
                             f"! {escape(event.message)}", conn=event.conn)
            elif isinstance(event, RelayConnClosed):
                writer.event({"event": "close", "conn": event.conn, "reason": event.reason,
                              "client_bytes": event.client_bytes,
                              "server_bytes": event.server_bytes},
                             f"= {escape(event.reason)} (client sent {event.client_bytes} B, "
                             f"server sent {event.server_bytes} B)", conn=event.conn)
            elif isinstance(event, Notice):
                self.env.write_stderr_line(f"wstool: {event.text}")
            writer.flush()
        except (BrokenPipeError, ValueError):
            pass  # stdout is gone (| head): keep relaying, the clients matter more


async def run_relay(env: Environment, relay_cfg: RelayConfig, cfg: DumpConfig) -> int:
    """``frame-dump --listen``: relay until SIGINT (exit 130) or SIGTERM (exit 0).

    The relay forwards every byte whatever it sees; what it saw shows in the
    status at the end: 6 when any frame had a protocol problem (or a stream
    could not be decoded), for SIGINT and SIGTERM alike, unless --no-fail. So
    a CI job that runs its tests through the relay and stops it with
    `kill -TERM` fails on 6, and one stopped with `timeout -s INT` can still
    tell 6 (problems) from 130 (nothing wrong).
    """
    import asyncio
    import signal

    from wstool.dump.relay import Relay
    from wstool.term.signals import handle_signals

    renderer = RelayRenderer(env, cfg)
    relay = Relay(relay_cfg, renderer)
    await relay.start()
    stopped: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def stop(status: int) -> None:
        if not stopped.done():
            stopped.set_result(status)

    try:
        with handle_signals({signal.SIGINT: lambda: stop(ExitStatus.INTERRUPTED),
                             signal.SIGTERM: lambda: stop(ExitStatus.OK)}):
            status = await stopped
    finally:
        await relay.close()  # the connections still open end here: their close lines
    return renderer.writer.exit_status(status)


class _PcapWebSocket:
    """One TCP connection of a capture, while we find out whether it is a WebSocket."""

    def __init__(self) -> None:
        self.number = 0  # WebSocket connection number, once the upgrade is seen
        self.client: tuple[str, int] | None = None
        self.early: dict[tuple[str, int], bytes] = {}  # bytes before the decision
        self.ignored = False
        self.skipped: str | None = None  # why it is not decoded: a key of SKIP_REASONS
        self.decoding = True
        self.decoders: dict[tuple[str, int], FrameDecoder] = {}
        self.failed = False
        self.closed = False


# Why --pcap decodes no frames of a TCP connection (the `skipped` line and
# event, issue 10), in the order they are listed.
SKIP_REASONS: dict[str, str] = {
    "no_upgrade": "without a WebSocket upgrade request (not HTTP, or begun before the "
                  "capture)",
    "tls": "TLS (decrypt it first: SSLKEYLOGFILE + Wireshark)",
    "no_data": "with no data",
}


def _is_tls_record(early: bytes) -> bool:
    """A TLS record header: content type 20-23 (handshake 22 first), version 3.x.

    None of these first bytes is a valid WebSocket frame (FIN clear, opcode 4-7
    reserved), nor the start of an HTTP request.
    """
    return len(early) >= 2 and 0x14 <= early[0] <= 0x17 and early[1] == 0x03


def _skipped_summary(states: list[_PcapWebSocket]) -> dict[str, int]:
    counts = dict.fromkeys(SKIP_REASONS, 0)
    for state in states:
        if state.number:
            continue
        reason = state.skipped
        if reason is None:  # never decided: a response without its request, a cut head
            reason = "no_upgrade" if any(state.early.values()) else "no_data"
        counts[reason] += 1
    return counts


def _endpoint(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def dump_pcap(env: Environment, path: str, cfg: DumpConfig) -> int:
    """``frame-dump --pcap``: every WebSocket connection of a capture, both directions."""
    try:
        with open(path, "rb") as f:
            try:  # mapped, not read: captures can be large
                data: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # an empty file cannot be mapped
                data = b""
    except OSError as exc:
        raise WstoolError(f"cannot read --pcap {path}: {exc.strerror or exc}") from None
    try:
        return _dump_capture(env, path, data, cfg)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def _dump_capture(env: Environment, path: str, data: bytes | mmap.mmap,
                  cfg: DumpConfig) -> int:
    from wstool.protocol.frames import apply_upgrade_response
    from wstool.protocol.pcap import TcpConnection, TcpReassembler, read_packets, tcp_segment

    writer = FrameWriter(env, cfg)
    reassembler = TcpReassembler()
    states: dict[int, _PcapWebSocket] = {}
    websockets = 0

    def start(state: _PcapWebSocket, client: tuple[str, int], server: tuple[str, int],
              packet_index: int) -> None:
        nonlocal websockets
        websockets += 1
        state.number = websockets
        state.client = client
        state.decoders[client] = FrameDecoder(direction="client",
                                              max_buffer_bytes=cfg.max_buffer_bytes)
        state.decoders[server] = FrameDecoder(direction="server",
                                              max_buffer_bytes=cfg.max_buffer_bytes)
        writer.event({"event": "open", "conn": state.number, "peer": _endpoint(client),
                      "server": _endpoint(server), "packet": packet_index},
                     f"= connection {state.number}: {_endpoint(client)} -> "
                     f"{_endpoint(server)} (packet {packet_index})", conn=state.number)

    def feed(state: _PcapWebSocket, sender: tuple[str, int], chunk: bytes) -> None:
        if not state.decoding or not chunk:
            return
        decoder = state.decoders[sender]
        try:
            records = decoder.feed(chunk)
        except DecodeError as exc:
            side = "client" if sender == state.client else "server"
            error(state, f"{side} stream: {exc}; no longer decoding")
            state.decoding = False
            return
        for record in records:
            if isinstance(record, HttpHead) and record.kind == "response":
                other = next(d for s, d in state.decoders.items() if s != sender)
                if not apply_upgrade_response(record, other, decoder):
                    state.decoding = False
            writer.record(record, conn=state.number)

    def ignore(state: _PcapWebSocket, reason: str) -> None:
        state.ignored = True
        state.skipped = reason
        state.early.clear()  # nothing more is kept of a skipped connection

    def error(state: _PcapWebSocket, message: str) -> None:
        state.failed = True
        writer.event({"event": "error", "conn": state.number, "message": message},
                     f"! {escape(message)}", conn=state.number)

    def finalize(conn: TcpConnection, state: _PcapWebSocket) -> None:
        """Both directions ended (FIN), or the capture did: report and close."""
        state.closed = True
        for sender, decoder in state.decoders.items():
            side = "client" if sender == state.client else "server"
            stream = conn.streams.get(sender)
            if stream is not None and stream.gap is not None:
                error(state, f"{side} stream: bytes missing from the capture after stream "
                             f"offset {stream.gap}")
                continue
            if state.decoding:
                try:
                    decoder.finish()
                except DecodeError as exc:
                    error(state, f"{side} stream: {exc}")
        streams = [conn.streams.get(s) for s in state.decoders]
        ended = all(s is not None and s.finished for s in streams)
        writer.event({"event": "close", "conn": state.number,
                      "reason": "closed" if ended else "end of capture"},
                     "= closed" if ended else "= end of capture (connection still open)",
                     conn=state.number)

    try:
        for packet in read_packets(data):
            seg = tcp_segment(packet.linktype, packet.data)
            if seg is None:
                continue
            conn, chunk = reassembler.add(seg)
            state = states.get(conn.number)
            if state is None:
                state = states[conn.number] = _PcapWebSocket()
            if state.ignored:
                continue
            if state.number:
                if not state.closed:
                    feed(state, seg.src, chunk)
                    if len(conn.streams) == 2 and all(st.finished
                                                      for st in conn.streams.values()):
                        finalize(conn, state)
                continue
            if not chunk:
                continue
            # Not yet known: a WebSocket starts with "GET ... Upgrade: websocket".
            early = state.early.get(seg.src, b"") + chunk
            state.early[seg.src] = early
            if early.startswith(b"HTTP/") or b"HTTP/".startswith(early[:5]):
                continue  # a response (or its start) waits for its request
            if not early.startswith(b"GET ") and not b"GET ".startswith(early[:4]):
                if len(early) < 2 and 0x14 <= early[0] <= 0x17:
                    continue  # perhaps a TLS record: its second byte tells
                ignore(state, "tls" if _is_tls_record(early) else "no_upgrade")
                continue
            end = early.find(b"\r\n\r\n")
            if end < 0:
                if len(early) > 64 * 1024:
                    ignore(state, "no_upgrade")
                continue
            if b"websocket" not in early[:end].lower():
                ignore(state, "no_upgrade")
                continue
            server = seg.dst
            start(state, seg.src, server, packet.index)
            feed(state, seg.src, early)
            feed(state, server, state.early.pop(server, b""))
            state.early.clear()
        writer.flush()
    except WstoolError:
        writer.flush()
        raise
    # End of capture: report what did not end cleanly.
    for conn in reassembler.connections.values():
        state = states.get(conn.number)
        if state is not None and state.number and not state.closed:
            finalize(conn, state)
    skipped = _skipped_summary(list(states.values()))
    total_skipped = sum(skipped.values())
    if total_skipped and cfg.json:
        writer.write_json({"event": "skipped", "connections": total_skipped, **skipped})
    writer.flush()
    if not websockets:
        env.write_stderr_line(f"wstool: no WebSocket upgrade in the "
                              f"{len(states)} TCP connections of {path}")
    if total_skipped:
        reasons = ", ".join(f"{count} {SKIP_REASONS[key]}"
                            for key, count in skipped.items() if count)
        plural = "s" if total_skipped != 1 else ""
        env.write_stderr_line(f"wstool: skipped {total_skipped} TCP connection{plural}: "
                              f"{reasons}")
    failed = sum(1 for st in states.values() if st.failed)
    if failed:
        writer.exit_status(ExitStatus.PROTOCOL_ERROR, failing=True)
        raise ProtocolFailure(f"{failed} WebSocket connection(s) in {path} ended inside a "
                              "frame or with bytes missing (see the ! lines)")
    return writer.exit_status(ExitStatus.OK)
