"""Read MQTT packets straight off a connected aiomqtt client's socket (the fast receive path).

aiomqtt's own message iterator costs a task, a queue hand-off and two wrapper objects per
message, and paho reads each packet with three or four `recv` calls; at the full HSL feed
that is most of a core. Here the socket is read in large chunks and the QoS 0 PUBLISH
packets of each chunk are handed over at once as topics and payloads; every other packet
still goes to paho.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

READS_PER_TURN = 16
READ_SIZE = 1 << 18


class FastReader:
    """Own a connected aiomqtt client's socket and take QoS 0 PUBLISH packets off it.

    After the CONNACK, this reader replaces aiomqtt's, reads the socket in large
    chunks and splits them into MQTT packets itself. A QoS 0 PUBLISH (the whole
    feed) becomes a message right here; every other packet (SUBACK, PINGRESP,
    QoS 1/2 PUBLISH) is handed to paho unchanged, so the protocol stays paho's.

    This reaches into aiomqtt 2.x (`_client`, `_disconnected`) and paho 2.x
    (`_create_socket`, `_last_bytes_received`) and assumes MQTT 3.1.1 packets;
    pyproject.toml pins both below their next major version, and the source's
    tests run against a real broker, so a change there fails loudly.
    """

    def __init__(
        self,
        client: aiomqtt.Client,
        accept: Callable[[list[str], list[bytes]], None],
        on_message: Callable[[paho.Client, Any, paho.MQTTMessage], None],
        on_turn: Callable[[], None],
        full: Callable[[], bool],
    ) -> None:
        self.client = client
        self.paho = client._client
        self.accept = accept
        self.on_turn = on_turn
        self.full = full
        self.loop = asyncio.get_running_loop()
        self._socket: _SplitSocket | None = None
        self._splitter = PacketSplitter(accept, self._give_paho)
        create_socket = self.paho._create_socket

        def split() -> Any:
            self._socket = _SplitSocket(create_socket())
            return self._socket

        self.paho._create_socket = split  # type: ignore[method-assign]
        self.paho.on_message = on_message

    def install(self) -> None:
        """Take over reading from aiomqtt; call once the broker has accepted the connection."""
        sock = self._socket
        if sock is None or self.paho.socket() is None:
            raise aiomqtt.MqttError("connection closed while connecting")
        sock.split = True
        fileno = sock.fileno()
        self.loop.remove_reader(fileno)
        self.loop.add_reader(fileno, self._on_readable)

    async def wait_closed(self, stopping: asyncio.Event) -> None:
        """Return when `stopping` is set; raise the connection's error if it drops first."""
        disconnected = self.client._disconnected
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait((disconnected, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if disconnected.done():
            error = disconnected.exception()
            raise error if error is not None else aiomqtt.MqttError("disconnected")

    def _give_paho(self, packet: bytes) -> None:
        if self._socket is not None:
            self._socket.give_paho(packet)

    def _on_readable(self) -> None:
        sock = self._socket
        if sock is None or self.paho.socket() is None:
            return
        self.on_turn()
        try:
            for _ in range(READS_PER_TURN):
                if self.full():
                    # A batch already waits: leave the rest in the socket (and the broker)
                    # until the pipeline takes it, instead of outrunning it into drops.
                    break
                data = sock.read()
                if data is None:
                    break
                if not data:
                    sock.give_paho(b"")
                    break
                self._splitter.feed(data)
            else:
                # More may be waiting than one turn should take: continue after others ran.
                self.loop.call_soon(self._on_readable)
            self.paho._last_bytes_received = time.monotonic()
            while sock.for_paho() and self.paho.loop_read() == paho.MQTT_ERR_SUCCESS:
                pass
        except Exception as exc:  # a broken connection surfaces in wait_closed()
            if not self.client._disconnected.done():
                self.client._disconnected.set_exception(exc)


class PacketSplitter:
    """Cut a byte stream into MQTT 3.1.1 packets: QoS 0 PUBLISH to `accept`, others to `other`.

    `accept` takes the topics and payloads of one `feed()` at once, in stream order.
    Packets may arrive cut anywhere; an incomplete tail waits for the next `feed()`.
    """

    def __init__(
        self,
        accept: Callable[[list[str], list[bytes]], None],
        other: Callable[[bytes], None],
    ) -> None:
        self.accept = accept
        self.other = other
        self._rest = b""

    def feed(self, data: bytes) -> None:
        """Consume received bytes, delivering every packet they complete."""
        buf = self._rest + data if self._rest else data
        size, pos = len(buf), 0
        topics: list[str] = []
        payloads: list[bytes] = []
        while size - pos >= 2:
            # The remaining length: one byte below 128, two below 16384 (nearly every
            # HFP message), else the general varint.
            length = buf[pos + 1]
            if length < 0x80:
                start = pos + 2
            elif pos + 2 < size and buf[pos + 2] < 0x80:
                length = (length & 0x7F) | buf[pos + 2] << 7
                start = pos + 3
            else:
                length, multiplier, index = 0, 1, pos + 1
                while index < size and buf[index] & 0x80:
                    length += (buf[index] & 0x7F) * multiplier
                    multiplier *= 128
                    index += 1
                if index >= size:
                    break
                length += buf[index] * multiplier
                start = index + 1
            end = start + length
            if end > size:
                break
            if buf[pos] & 0xF6 == 0x30:  # PUBLISH at QoS 0; retain and dup flags do not matter
                topic_end = start + 2 + ((buf[start] << 8) | buf[start + 1])
                try:
                    topics.append(buf[start + 2 : topic_end].decode())
                except UnicodeDecodeError:
                    # Kept (and later rejected as a malformed topic) rather than lost unseen.
                    topics.append(buf[start + 2 : topic_end].decode("utf-8", "replace"))
                payloads.append(buf[topic_end:end])
            else:
                self.other(buf[pos:end])
            pos = end
        self._rest = buf[pos:]
        if topics:
            self.accept(topics, payloads)


class _SplitSocket:
    """The client's socket, shared by paho (before and beside the fast reader) and the reader.

    Until `split` is set, paho reads the network directly. After that only the
    fast reader does, and paho's `recv` is served the packets it was handed; an end
    of stream or a socket error is passed on to paho so that it notices the loss.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.split = False
        self._paho = bytearray()
        self._closed = False
        self._error: OSError | None = None

    def read(self) -> bytes | None:
        """Return what the network has (b"" at its end), or None when nothing is waiting."""
        try:
            data: bytes = self._sock.recv(READ_SIZE)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except OSError as exc:
            self._error = exc
            return b""
        return data

    def give_paho(self, packet: bytes) -> None:
        """Queue a packet for paho; an empty one marks the end of the stream."""
        if packet:
            self._paho += packet
        else:
            self._closed = True

    def for_paho(self) -> bool:
        """Return whether paho has a packet, an error or the end of the stream to read."""
        return bool(self._paho) or self._closed

    def recv(self, size: int) -> bytes:
        """Serve paho: the network before the split, its handed packets after."""
        if not self.split:
            data: bytes = self._sock.recv(size)
            return data
        if self._paho:
            chunk = bytes(self._paho[:size])
            del self._paho[:size]
            return chunk
        if self._error is not None:
            raise self._error
        if self._closed:
            return b""
        raise BlockingIOError

    def pending(self) -> int:
        """Return how many bytes paho can read without waiting for the network."""
        if self.split:
            return len(self._paho)
        inner = getattr(self._sock, "pending", None)
        return inner() if inner is not None else 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
