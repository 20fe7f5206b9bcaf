"""Where lake files are stored: a local directory or an S3 bucket, behind one interface.

Keys are relative to the lake root, e.g.
`processed/year=2024/month=02/day=13/hour=16/part-<first received ms>-<writer id>-<seq>.parquet`.
A file appears whole or not at all: locally through a temporary name, fsync and an
atomic rename; on S3 through one PutObject of the complete bytes.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import secrets
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import aioboto3
import aiohttp
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hsl_live.errors import SinkError
from hsl_live.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

S3_TIMEOUT_SECONDS = 30.0
S3_CONNECT_TIMEOUT_SECONDS = 5.0
TEMP_SUFFIX = ".tmp"

T = TypeVar("T")

_S3_ERRORS = (BotoCoreError, ClientError, aiohttp.ClientError, OSError)


class Sink(Protocol):
    """Object storage for lake files; every method raises SinkError on failure."""

    url: str

    async def put(self, key: str, data: bytes) -> None:
        """Store a whole object under a key, replacing any object of that name."""
        ...

    async def list(self, prefix: str) -> builtins.list[str]:
        """Return the sorted keys that start with a prefix, relative to the lake root."""
        ...

    async def get(self, key: str) -> bytes:
        """Return an object's bytes."""
        ...

    async def delete(self, key: str) -> None:
        """Remove an object; a missing object is not an error."""
        ...

    async def check(self) -> None:
        """Raise SinkError unless the storage is reachable and writable."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def open_sink(settings: Settings) -> Sink:
    """Return the sink for `settings.lake_url`: S3 for `s3://bucket/prefix`, else a path."""
    if settings.is_s3:
        return S3Sink(settings.lake_url, endpoint_url=settings.s3_endpoint_url)
    return LocalSink(Path(settings.lake_url))


class LocalSink:
    """Lake files in a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    async def put(self, key: str, data: bytes) -> None:
        """Write through a temporary name in the same folder, fsync, then rename atomically."""
        await asyncio.to_thread(self._put, key, data)

    async def list(self, prefix: str) -> builtins.list[str]:
        """Return the sorted keys under a prefix; temporary files are not listed."""
        return await asyncio.to_thread(self._list, prefix)

    async def get(self, key: str) -> bytes:
        """Return a file's bytes."""
        return await asyncio.to_thread(self._get, key)

    async def delete(self, key: str) -> None:
        """Remove a file if it exists."""
        await asyncio.to_thread(self._delete, key)

    async def check(self) -> None:
        """Create the root if needed and prove it writable with a probe file."""
        await asyncio.to_thread(self._check)

    async def close(self) -> None:
        """Nothing to release for local files."""

    def _path(self, key: str) -> Path:
        parts = Path(key).parts
        if not parts or Path(key).is_absolute() or ".." in parts:
            raise SinkError(f"invalid lake key {key!r}: expected a relative path without '..'")
        return self.root / key

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with temp.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise SinkError(f"cannot write {key} to {self.url}: {exc.strerror}") from exc

    def _list(self, prefix: str) -> builtins.list[str]:
        # Walk only the deepest folder the prefix names; the rest is a name prefix.
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self.root
        if not start.is_dir():
            return []
        try:
            keys = [
                path.relative_to(self.root).as_posix()
                for path in start.rglob("*")
                if path.is_file() and not path.name.endswith(TEMP_SUFFIX)
            ]
        except OSError as exc:
            raise SinkError(f"cannot list {prefix!r} in {self.url}: {exc.strerror}") from exc

        return sorted(key for key in keys if key.startswith(prefix))

    def _get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise SinkError(f"cannot read {key} from {self.url}: {exc.strerror}") from exc

    def _delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot delete {key} from {self.url}: {exc.strerror}") from exc

    def _check(self) -> None:
        probe = self.root / f".hsl-live-check.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise SinkError(f"lake {self.url} is not writable: {exc.strerror}") from exc


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class S3Sink:
    """Lake files in `s3://bucket/prefix`; credentials come from the standard AWS chain.

    Every call is bounded by `timeout` seconds on top of botocore's own connect and
    read timeouts, so a hung endpoint surfaces as SinkError instead of a stall.
    """

    def __init__(
        self, url: str, *, endpoint_url: str | None = None, timeout: float = S3_TIMEOUT_SECONDS
    ) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise SinkError(f"invalid S3 lake URL {url!r}: expected s3://bucket/prefix")
        self.url = url
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.timeout = timeout
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._lock = asyncio.Lock()

    async def put(self, key: str, data: bytes) -> None:
        """Upload a complete object in one PutObject."""
        client = await self._connect()
        await self._call(key, client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data))

    async def list(self, prefix: str) -> builtins.list[str]:
        """Return the sorted keys under a prefix, relative to the lake root."""
        client = await self._connect()
        keys: builtins.list[str] = []
        paginator = client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix))
        try:
            async with asyncio.timeout(self.timeout):
                async for page in pages:
                    keys += [item["Key"] for item in page.get("Contents", [])]
        except _S3_ERRORS as exc:
            raise SinkError(f"cannot list {prefix!r} in {self.url}: {_reason(exc)}") from exc

        return sorted(key.removeprefix(self.prefix) for key in keys)

    async def get(self, key: str) -> bytes:
        """Download an object's bytes."""
        client = await self._connect()

        async def read() -> bytes:
            response = await client.get_object(Bucket=self.bucket, Key=self._key(key))
            async with response["Body"] as body:
                data: bytes = await body.read()
            return data

        return await self._call(key, read())

    async def delete(self, key: str) -> None:
        """Delete an object; S3 treats a missing key as deleted."""
        client = await self._connect()
        await self._call(key, client.delete_object(Bucket=self.bucket, Key=self._key(key)))

    async def check(self) -> None:
        """Raise SinkError unless the bucket answers HeadBucket with these credentials."""
        client = await self._connect()
        try:
            async with asyncio.timeout(self.timeout):
                await client.head_bucket(Bucket=self.bucket)
        except _S3_ERRORS as exc:
            raise SinkError(f"lake {self.url} is not reachable: {_reason(exc)}") from exc

    async def close(self) -> None:
        """Close the HTTP connections."""
        self._client = None
        await self._stack.aclose()

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def _connect(self) -> S3Client:
        async with self._lock:
            if self._client is None:
                self._client = await self._open_client()
            return self._client

    async def _open_client(self) -> S3Client:
        config = Config(
            connect_timeout=S3_CONNECT_TIMEOUT_SECONDS,
            read_timeout=self.timeout,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        client = aioboto3.Session().client("s3", endpoint_url=self.endpoint_url, config=config)
        try:
            opened: S3Client = await self._stack.enter_async_context(client)
        except _S3_ERRORS as exc:
            raise SinkError(f"cannot connect to {self.url}: {_reason(exc)}") from exc
        return opened

    async def _call(self, key: str, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except _S3_ERRORS as exc:
            raise SinkError(f"S3 request for {key} in {self.url} failed: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
