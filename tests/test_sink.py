"""Tests of the lake's storage: a local folder and an S3 endpoint (moto)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from hsl_live.errors import SinkError
from hsl_live.s3 import S3_MIN_PART_BYTES, S3Sink
from hsl_live.settings import Settings
from hsl_live.sink import LocalSink, Sink, open_sink
from s3_server import S3Server, fake_aws_credentials, free_port, s3_server

__all__ = ["s3_server"]

KEY = "processed/year=2024/month=02/day=13/hour=16/part-1707840000000-w1-0.parquet"
OTHER = "raw/year=2024/month=02/day=13/hour=16/part-1707840000000-w1-1.parquet"
# Three parts of S3's smallest part size: the multipart path with more parts than slots.
LARGE_BYTES = 12 * 2**20


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


async def _file_round_trip(sink: Sink, folder: Path, size: int) -> None:
    source = folder / "source.parquet"
    source.write_bytes(os.urandom(size))
    copy = folder / "copy.parquet"

    await sink.put_file(KEY, source)
    await sink.get_file(KEY, copy)

    assert copy.read_bytes() == source.read_bytes()
    assert await sink.list("processed/") == [KEY]
    assert _names(folder) == ["copy.parquet", "source.parquet"]


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


async def test_local_sink_round_trip(tmp_path: Path) -> None:
    await _round_trip(LocalSink(tmp_path / "lake"))


async def test_local_sink_file_round_trip(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    sink = LocalSink(tmp_path / "lake")

    await _file_round_trip(sink, tmp_path / "work", LARGE_BYTES)

    assert [p.name for p in (tmp_path / "lake" / KEY).parent.iterdir()] == [Path(KEY).name]


async def test_local_sink_put_file_missing_source_names_key_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.parquet"

    with pytest.raises(SinkError, match=f"cannot write {KEY} .* from {missing}") as caught:
        await LocalSink(tmp_path / "lake").put_file(KEY, missing)

    assert isinstance(caught.value.__cause__, FileNotFoundError)
    assert list((tmp_path / "lake").rglob("*.parquet*")) == []


async def test_local_sink_get_file_missing_key_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "copy.parquet"

    with pytest.raises(SinkError, match=f"cannot read {KEY}"):
        await LocalSink(tmp_path / "lake").get_file(KEY, target)

    assert _names(tmp_path) == []


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


def test_a_local_lake_runs_without_loading_the_aws_sdk(tmp_path: Path) -> None:
    # `hsl-live run`'s modules and a local sink; aioboto3 and botocore weigh about 20 MB.
    code = (
        "import sys; from hsl_live import cli; from hsl_live.settings import Settings; "
        f"cli.open_sink(Settings(lake_url={str(tmp_path)!r})); "
        "sdk = {'aioboto3', 'botocore', 'aiohttp'}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & sdk))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "[]"


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


def _s3_sink(server: S3Server, **options: Any) -> S3Sink:
    return S3Sink(
        f"s3://{server.bucket}/lake",
        endpoint_url=server.url,
        part_bytes=S3_MIN_PART_BYTES,
        part_concurrency=2,
        **options,
    )


def _pending_uploads(server: S3Server) -> list[str]:
    client = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1")
    uploads = client.list_multipart_uploads(Bucket=server.bucket).get("Uploads", [])
    return [upload["Key"] for upload in uploads]


@pytest.mark.integration
@pytest.mark.parametrize("size", [1000, LARGE_BYTES])
async def test_s3_sink_file_round_trip(s3_server: S3Server, tmp_path: Path, size: int) -> None:
    sink = _s3_sink(s3_server)
    try:
        await _file_round_trip(sink, tmp_path, size)
    finally:
        await sink.close()

    assert s3_server.object_keys() == [f"lake/{KEY}"]
    assert _pending_uploads(s3_server) == []


@pytest.mark.integration
async def test_s3_sink_put_file_uploads_large_file_in_parts(
    s3_server: S3Server, tmp_path: Path
) -> None:
    source = tmp_path / "source.parquet"
    source.write_bytes(os.urandom(LARGE_BYTES))
    sink = _s3_sink(s3_server)
    try:
        await sink.put_file(KEY, source)
    finally:
        await sink.close()

    client = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1")
    head = client.head_object(Bucket=s3_server.bucket, Key=f"lake/{KEY}")
    # A multipart object's ETag ends in "-<number of parts>".
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == LARGE_BYTES


class FailingParts:
    """Stands in for a client's upload_part: the `fail_at`th call fails (or hangs)."""

    def __init__(self, upload_part: Any, fail_at: int, *, hang: bool = False) -> None:
        self.upload_part = upload_part
        self.fail_at = fail_at
        self.hang = hang
        self.calls = 0
        self.hanging = asyncio.Event()

    async def __call__(self, **request: Any) -> Any:
        self.calls += 1
        if self.calls == self.fail_at:
            if self.hang:
                self.hanging.set()
                await asyncio.Event().wait()
            raise ClientError({"Error": {"Code": "InternalError"}}, "UploadPart")
        return await self.upload_part(**request)


@pytest.mark.integration
async def test_s3_sink_put_file_failure_aborts_upload(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source.parquet"
    source.write_bytes(os.urandom(LARGE_BYTES))
    sink = _s3_sink(s3_server)
    try:
        client = await sink._connect()
        monkeypatch.setattr(client, "upload_part", FailingParts(client.upload_part, 2))
        with pytest.raises(SinkError, match=f"S3 request for {KEY} in s3://") as caught:
            await sink.put_file(KEY, source)
    finally:
        await sink.close()

    assert isinstance(caught.value.__cause__, ClientError)
    assert s3_server.object_keys() == []
    assert _pending_uploads(s3_server) == []


@pytest.mark.integration
async def test_s3_sink_put_file_cancelled_aborts_upload(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source.parquet"
    source.write_bytes(os.urandom(LARGE_BYTES))
    sink = _s3_sink(s3_server)
    try:
        client = await sink._connect()
        parts = FailingParts(client.upload_part, 2, hang=True)
        monkeypatch.setattr(client, "upload_part", parts)
        upload = asyncio.create_task(sink.put_file(KEY, source))
        async with asyncio.timeout(10):
            await parts.hanging.wait()
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload
    finally:
        await sink.close()

    assert s3_server.object_keys() == []
    assert _pending_uploads(s3_server) == []


@pytest.mark.integration
async def test_s3_sink_put_file_abort_failure_is_logged(
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = tmp_path / "source.parquet"
    source.write_bytes(os.urandom(LARGE_BYTES))
    sink = _s3_sink(s3_server)
    try:
        client = await sink._connect()
        monkeypatch.setattr(client, "upload_part", FailingParts(client.upload_part, 1))
        monkeypatch.setattr(client, "abort_multipart_upload", FailingParts(None, 1))
        with caplog.at_level(logging.WARNING, logger="hsl_live.sink"), pytest.raises(SinkError):
            await sink.put_file(KEY, source)
    finally:
        await sink.close()

    [record] = caplog.records
    assert record.getMessage().startswith("cannot abort multipart upload ")
    assert KEY in record.getMessage()
    assert s3_server.object_keys() == []


@pytest.mark.integration
async def test_s3_sink_get_file_missing_key_names_key_and_leaves_no_file(
    s3_server: S3Server, tmp_path: Path
) -> None:
    target = tmp_path / "copy.parquet"
    sink = _s3_sink(s3_server)
    try:
        with pytest.raises(SinkError, match=f"S3 request for {KEY} in s3://"):
            await sink.get_file(KEY, target)
    finally:
        await sink.close()

    assert _names(tmp_path) == []


@pytest.mark.integration
async def test_s3_sink_get_file_unreachable_endpoint_raises_sink_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_aws_credentials(monkeypatch)
    sink = S3Sink("s3://bucket", endpoint_url=f"http://127.0.0.1:{free_port()}", timeout=5)
    try:
        with pytest.raises(SinkError, match=KEY):
            await sink.get_file(KEY, tmp_path / "copy.parquet")
    finally:
        await sink.close()


def test_s3_sink_rejects_parts_smaller_than_s3_allows() -> None:
    with pytest.raises(ValueError, match="part_bytes must be at least 5242880, got 1024"):
        S3Sink("s3://bucket", part_bytes=1024)
