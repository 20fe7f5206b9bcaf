"""Tests of frames and the broadcaster, without a server."""

from __future__ import annotations

import asyncio

import msgspec

from hsl_live.clock import Clock
from hsl_live.filters import Filter
from hsl_live.sse import SLICE_BYTES, Broadcaster, Chunk, _sender, frame
from hsl_live.store import VehicleStore
from test_store import make_event, make_store


def make_broadcaster(store: VehicleStore) -> Broadcaster:
    return Broadcaster(store, Clock(replay=True), tick_seconds=0.5, ping_seconds=15)


def decode_frames(chunk: Chunk | None) -> list[tuple[str, list[object]]]:
    assert chunk is not None
    frames = []
    for block in bytes(chunk.body).decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            frames.append((lines["event"], msgspec.json.decode(lines["data"])))
    return frames


def test_frame_carries_event_id_and_one_data_line() -> None:
    assert frame("update", 42, b'[{"headsign":"a\\nb"}]') == (
        b'event: update\nid: 42\ndata: [{"headsign":"a\\nb"}]\n\n'
    )


async def test_broadcaster_encodes_each_tick_once_per_filter() -> None:
    store = make_store()
    broadcaster = make_broadcaster(store)
    clients = [broadcaster.connect(Filter(), None) for _ in range(3)]
    trams = broadcaster.connect(Filter(modes=frozenset({"tram"})), None)
    store.apply(make_event(1))
    store.apply(make_event(2, mode="tram"))
    broadcaster.tick()

    chunks = [await broadcaster.next_chunk(client, 1e12) for client in clients]
    tram_chunk = await broadcaster.next_chunk(trams, 1e12)

    assert broadcaster.stats.encoded["update"] == 2
    assert chunks[0] is chunks[1] is chunks[2]
    assert chunks[0] is not None
    assert tram_chunk is not None
    assert [len(data) for _, data in decode_frames(chunks[0])] == [2]
    assert [len(data) for _, data in decode_frames(tram_chunk)] == [1]


async def test_broadcaster_catches_up_a_client_a_tick_behind_with_latest_states() -> None:
    store = make_store()
    broadcaster = make_broadcaster(store)
    slow = [broadcaster.connect(Filter(), None) for _ in range(3)]
    store.apply(make_event(1, at=1, lat=60.1))
    store.apply(make_event(2, at=1))
    broadcaster.tick()
    store.apply(make_event(1, at=2, lat=60.2))
    store.apply(make_event(3, at=2))
    broadcaster.tick()

    chunks = [await broadcaster.next_chunk(client, 1e12) for client in slow]

    assert chunks[0] is chunks[1] is chunks[2]
    [(event, states)] = decode_frames(chunks[0])
    assert event == "update"
    assert sorted((s["id"], s["lat"]) for s in states) == [  # type: ignore[index]
        ("22/1", 60.2),
        ("22/2", 60.17),
        ("22/3", 60.17),
    ]
    assert broadcaster.stats.catch_ups == 1
    assert [client.cursor for client in slow] == [store.seq] * 3


async def test_broadcaster_sends_clients_further_behind_one_shared_snapshot() -> None:
    store = make_store()
    broadcaster = make_broadcaster(store)
    slow = [broadcaster.connect(Filter(), None) for _ in range(3)]
    for second in range(1, 6):
        store.apply(make_event(1, at=second, lat=60 + second / 10))
        store.apply(make_event(2, at=second))
        broadcaster.tick()

    chunks = [await broadcaster.next_chunk(client, 1e12) for client in slow]
    newcomer = broadcaster.connect(Filter(), None)

    assert chunks[0] is chunks[1] is chunks[2] is newcomer.opening
    [(event, states)] = decode_frames(chunks[0])
    assert event == "snapshot"
    assert sorted((s["id"], s["lat"]) for s in states) == [("22/1", 60.5), ("22/2", 60.17)]  # type: ignore[index]
    assert (broadcaster.stats.resnapshots, broadcaster.stats.catch_ups) == (3, 0)
    assert slow[0].cursor == store.seq


async def test_broadcaster_sends_a_ping_when_quiet() -> None:
    broadcaster = make_broadcaster(make_store())
    client = broadcaster.connect(Filter(), None)

    chunk = await broadcaster.next_chunk(client, asyncio.get_running_loop().time() + 0.05)

    assert chunk is not None
    assert bytes(chunk.body) == b": ping\n\n"


async def test_broadcaster_close_ends_waiting_streams() -> None:
    broadcaster = make_broadcaster(make_store())
    client = broadcaster.connect(Filter(), None)
    waiting = asyncio.create_task(broadcaster.next_chunk(client, 1e12))
    await asyncio.sleep(0)

    broadcaster.close()

    assert await asyncio.wait_for(waiting, 1) is None


def test_broadcaster_shares_one_opening_snapshot_among_clients_of_a_tick() -> None:
    store = make_store()
    store.apply(make_event(1))
    broadcaster = make_broadcaster(store)
    broadcaster.tick()

    crowd = [broadcaster.connect(Filter(), None) for _ in range(3)]
    store.apply(make_event(2))
    broadcaster.tick()
    later = broadcaster.connect(Filter(), None)

    assert crowd[0].opening is crowd[1].opening is crowd[2].opening
    assert later.opening is not crowd[0].opening
    assert broadcaster.stats.encoded["snapshot"] == 2
    [(event, states)] = decode_frames(later.opening)
    assert event == "snapshot"
    assert sorted(s["id"] for s in states) == ["22/1", "22/2"]  # type: ignore[index]
    assert bytes(later.opening.body).startswith(b"retry: ")  # type: ignore[union-attr]


def test_broadcaster_resume_from_a_foreign_id_gets_a_snapshot() -> None:
    store = make_store()
    store.apply(make_event())
    broadcaster = make_broadcaster(store)
    broadcaster.tick()

    client = broadcaster.connect(Filter(), "12345")

    assert [event for event, _ in decode_frames(client.opening)] == ["snapshot"]
    assert broadcaster.stats.resumes == 0


def test_broadcaster_forgets_a_filter_when_its_last_client_leaves() -> None:
    broadcaster = make_broadcaster(make_store())
    tram = Filter(modes=frozenset({"tram"}))
    first, second = broadcaster.connect(tram, None), broadcaster.connect(tram, None)

    broadcaster.disconnect(first)
    still = broadcaster.clients
    broadcaster.disconnect(second)

    assert (still, broadcaster.clients) == (1, 0)
    assert broadcaster.stats.connections == 2
    assert list(broadcaster.collect())[1].samples[0].value == 0


def test_chunk_holds_its_body_in_http_chunked_framing() -> None:
    chunk = Chunk(b"event: update\nid: 7\ndata: []\n\n")

    assert chunk.wire == b"1e\r\nevent: update\nid: 7\ndata: []\n\n\r\n"
    assert (bytes(chunk.body), len(chunk)) == (b"event: update\nid: 7\ndata: []\n\n", 30)


async def test_plain_asgi_sender_unframes_a_large_chunk_into_bounded_pieces() -> None:
    sent: list[bytes] = []

    async def send(message: dict[str, object]) -> None:
        body = message["body"]
        assert isinstance(body, bytes)
        sent.append(body)

    big = bytes(range(256)) * (SLICE_BYTES // 256 * 2 + 3)
    await _sender(send)(Chunk(big).wire)  # type: ignore[arg-type]

    assert b"".join(sent) == big
    assert len(sent) == 3
    assert max(map(len, sent)) == SLICE_BYTES
