"""Small synthetic HFP captures for the lake tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hsl_live.capture import CaptureWriter, RawMessage

START = datetime(2024, 2, 13, 15, 59, 50, tzinfo=UTC)


def vp_message(received: datetime, veh: int, tst: datetime, odo: int = 1200) -> RawMessage:
    """Return a valid VP message of bus 18/`veh` sent at `tst` and received at `received`."""
    stamp = tst.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    levels = f"{veh:05d}/1052/1/Kamppi/16:00/1130106/5/60;24/19/74/97"
    topic = f"/hfp/v2/journey/ongoing/vp/bus/0018/{levels}"
    payload = (
        f'{{"VP":{{"desi":"52","dir":"1","oper":18,"veh":{veh},"tst":"{stamp}",'
        f'"tsi":{int(tst.timestamp())},"spd":{veh % 17}.5,"hdg":90,"lat":60.17,"long":24.93,'
        f'"acc":0.1,"dl":-30,"odo":{odo},"drst":0,"oday":"2024-02-13","jrn":1,"line":52,'
        f'"start":"16:00","loc":"GPS","stop":null,"route":"1052","occu":0}}}}'
    )
    return RawMessage(received, topic, payload.encode())


def broken_message(received: datetime) -> RawMessage:
    """Return a message whose payload is not JSON: it belongs in the rejected zone."""
    return RawMessage(received, "/hfp/v2/journey/ongoing/vp/bus/0018/00001", b"{not json")


@dataclass(frozen=True)
class Expected:
    """What a capture should produce in the lake."""

    raw: int
    processed: int
    rejected: int


def feed(
    seconds: int, vehicles: int = 3, start: datetime = START, per_second: int = 1
) -> list[RawMessage]:
    """Return `per_second` VP messages a second from each vehicle, all valid and distinct."""
    messages = []
    for tick in range(seconds * per_second):
        moment = start + timedelta(seconds=tick / per_second)
        for veh in range(1, vehicles + 1):
            messages.append(vp_message(moment + timedelta(milliseconds=300), veh, moment))
    return messages


def write_capture(path: Path, messages: Sequence[RawMessage]) -> None:
    """Write messages as a capture file."""
    with CaptureWriter(path) as writer:
        for message in messages:
            writer.write(message)


def mixed_capture(path: Path) -> Expected:
    """Write a capture across two hours with duplicates, a rejection and a broken line."""
    messages = feed(20)
    copies = messages[:4]
    resent = messages[5]
    same_event = vp_message(
        resent.received_at + timedelta(seconds=1), 3, START + timedelta(seconds=1), odo=1300
    )
    rejected = broken_message(START + timedelta(seconds=3))
    write_capture(path, [*messages, *copies, same_event, rejected])
    with path.open("ab") as file:
        file.write(b"this line is not a capture line\n")

    return Expected(raw=len(messages) + 2, processed=len(messages), rejected=1)
