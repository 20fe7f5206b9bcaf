"""Tests of the lake's storage: a local folder and an S3 endpoint (moto)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsl_live.errors import SinkError
from hsl_live.settings import Settings
from hsl_live.sink import LocalSink, S3Sink, Sink, open_sink
from s3_server import S3Server, fake_aws_credentials, free_port, s3_server

__all__ = ["s3_server"]

KEY = "processed/year=2024/month=02/day=13/hour=16/part-1707840000000-w1-0.parquet"
OTHER = "raw/year=2024/month=02/day=13/hour=16/part-1707840000000-w1-1.parquet"


async def _round_trip(sink: Sink) -> None:
    await sink.put(KEY, b"first")
    await sink.put(KEY, b"second")
    await sink.put(OTHER, b"raw")

    assert await sink.get(KEY) == b"second"
    assert await sink.list("processed/") == [KEY]
    assert await sink.list("") == [KEY, OTHER]
    assert await sink.list("processed/year=2024/month=02/day=13/hour=16/part-17") == [KEY]

    await sink.delete(KEY)
    await sink.delete(KEY)
    assert await sink.list("processed/") == []


async def test_local_sink_round_trip(tmp_path: Path) -> None:
    await _round_trip(LocalSink(tmp_path / "lake"))


async def test_local_sink_leaves_no_temporary_files(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path)
    await sink.put(KEY, b"data")

    assert [p.name for p in (tmp_path / KEY).parent.iterdir()] == [Path(KEY).name]


async def test_local_sink_list_of_missing_prefix_is_empty(tmp_path: Path) -> None:
    assert await LocalSink(tmp_path / "nothing").list("processed/") == []


async def test_local_sink_put_failure_names_key(tmp_path: Path) -> None:
    (tmp_path / "processed").write_bytes(b"a file where a folder should be")

    with pytest.raises(SinkError, match="cannot write processed/"):
        await LocalSink(tmp_path).put(KEY, b"data")


async def test_local_sink_get_missing_raises(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match=KEY):
        await LocalSink(tmp_path).get(KEY)


async def test_local_sink_rejects_escaping_key(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="invalid lake key"):
        await LocalSink(tmp_path).put("../outside.parquet", b"data")


async def test_local_sink_check_fails_when_root_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    root.write_bytes(b"")

    with pytest.raises(SinkError, match="not writable"):
        await LocalSink(root).check()


def test_open_sink_chooses_by_url(tmp_path: Path) -> None:
    local = open_sink(Settings(lake_url=str(tmp_path)))
    remote = open_sink(Settings(lake_url="s3://bucket/some/prefix"))

    assert isinstance(local, LocalSink)
    assert isinstance(remote, S3Sink)
    assert (remote.bucket, remote.prefix) == ("bucket", "some/prefix/")


@pytest.mark.integration
async def test_s3_sink_round_trip(s3_server: S3Server) -> None:
    sink = S3Sink(f"s3://{s3_server.bucket}/lake", endpoint_url=s3_server.url)
    try:
        await sink.check()
        await _round_trip(sink)
        await sink.put(OTHER, b"raw")
        assert s3_server.object_keys() == [f"lake/{OTHER}"]
    finally:
        await sink.close()


@pytest.mark.integration
async def test_s3_sink_missing_bucket_fails_check(s3_server: S3Server) -> None:
    sink = S3Sink("s3://no-such-bucket", endpoint_url=s3_server.url)
    try:
        with pytest.raises(SinkError, match="s3://no-such-bucket"):
            await sink.check()
    finally:
        await sink.close()


@pytest.mark.integration
async def test_s3_sink_unreachable_endpoint_raises_sink_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_aws_credentials(monkeypatch)
    sink = S3Sink("s3://bucket", endpoint_url=f"http://127.0.0.1:{free_port()}", timeout=5)
    try:
        with pytest.raises(SinkError, match=KEY):
            await sink.put(KEY, b"data")
    finally:
        await sink.close()
