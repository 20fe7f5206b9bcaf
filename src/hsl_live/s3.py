"""The lake on Amazon S3 (or an S3-compatible endpoint), written with aioboto3.

A separate module so that a lake on local disk never loads the AWS SDK.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import itertools
import logging
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

import aioboto3
import aiohttp
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hsl_live.errors import SinkError
from hsl_live.sink import temp_beside

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

logger = logging.getLogger(__name__)

S3_TIMEOUT_SECONDS = 30.0
S3_CONNECT_TIMEOUT_SECONDS = 5.0

# A file larger than one part goes up in parts, this many at once. Each part in flight is
# held about twice (ours and the HTTP layer's): measured, a 100 MiB upload at 4 x 8 MiB
# raised the process by 66 MiB, at 1 x 8 MiB by 32 MiB, whatever the file's size.
S3_PART_BYTES = 8 * 2**20
S3_PART_CONCURRENCY = 4
# S3's limits: every part but the last is at least 5 MiB, and an upload has 10,000 parts.
S3_MIN_PART_BYTES = 5 * 2**20
S3_MAX_PARTS = 10_000
# Downloads are written to disk in chunks of this size, each read under its own timeout.
DOWNLOAD_CHUNK_BYTES = 2**20

T = TypeVar("T")

_S3_ERRORS = (BotoCoreError, ClientError, aiohttp.ClientError, OSError)


class S3Sink:
    """Lake files in `s3://bucket/prefix`; credentials come from the standard AWS chain.

    Every call is bounded by `timeout` seconds on top of botocore's own connect and
    read timeouts, so a hung endpoint surfaces as SinkError instead of a stall. Large
    transfers are many calls (one per part or chunk), each with that timeout. A file larger
    than `part_bytes` is uploaded in parts of that size, `part_concurrency` at a time.
    """

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        timeout: float = S3_TIMEOUT_SECONDS,
        part_bytes: int = S3_PART_BYTES,
        part_concurrency: int = S3_PART_CONCURRENCY,
    ) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise SinkError(f"invalid S3 lake URL {url!r}: expected s3://bucket/prefix")
        if part_bytes < S3_MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {S3_MIN_PART_BYTES}, got {part_bytes}")
        if part_concurrency < 1:
            raise ValueError(f"part_concurrency must be at least 1, got {part_concurrency}")
        self.url = url
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.timeout = timeout
        self.part_bytes = part_bytes
        self.part_concurrency = part_concurrency
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

    async def put_file(self, key: str, path: Path) -> None:
        """Upload a file: in one PutObject up to `part_bytes`, else as a multipart upload.

        A multipart object becomes visible only when CompleteMultipartUpload succeeds; a
        failure or cancellation before that aborts the upload, so no part of it remains.
        """
        action = f"upload {path} as {key} to {self.url}"
        size = await self._local(action, asyncio.to_thread(lambda: path.stat().st_size))
        if size <= self.part_bytes:
            await self.put(key, await self._local(action, asyncio.to_thread(path.read_bytes)))
            return

        client = await self._connect()
        create = client.create_multipart_upload(Bucket=self.bucket, Key=self._key(key))
        upload_id = (await self._call(key, create))["UploadId"]
        part_bytes = max(self.part_bytes, -(-size // S3_MAX_PARTS))
        try:
            parts = await self._upload_parts(client, key, path, upload_id, part_bytes, action)
            complete = client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            await self._call(key, complete)
        except BaseException:
            await self._abort(client, key, upload_id)
            raise

    async def get_file(self, key: str, path: Path) -> None:
        """Download an object to `path` in chunks, each read under the timeout.

        The chunks go to a temporary name beside `path`, renamed once the object's whole
        length has arrived (botocore checks it against Content-Length).
        """
        client = await self._connect()
        action = f"save {key} from {self.url} as {path}"
        temp = temp_beside(path)
        try:
            response = await self._call(
                key, client.get_object(Bucket=self.bucket, Key=self._key(key))
            )
            body = response["Body"]
            async with body:
                with await self._local(action, asyncio.to_thread(temp.open, "wb")) as file:
                    while chunk := await self._call(key, body.read(DOWNLOAD_CHUNK_BYTES)):
                        await self._local(action, asyncio.to_thread(file.write, chunk))
            await self._local(action, asyncio.to_thread(os.replace, temp, path))
        finally:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(temp.unlink, missing_ok=True)

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

    async def _local(self, action: str, work: Awaitable[T]) -> T:
        """Await local file work of a transfer; OSError becomes SinkError("cannot <action>")."""
        try:
            return await work
        except OSError as exc:
            reason = f"{exc.strerror} ({exc.filename})"
            raise SinkError(f"cannot {action}: {reason}") from exc

    async def _upload_parts(
        self,
        client: S3Client,
        key: str,
        path: Path,
        upload_id: str,
        part_bytes: int,
        action: str,
    ) -> builtins.list[CompletedPartTypeDef]:
        """Upload a file's parts, at most `part_concurrency` in memory at once, in order."""
        parts: builtins.list[CompletedPartTypeDef] = []
        slots = asyncio.Semaphore(self.part_concurrency)

        async def send(number: int, data: bytes) -> None:
            try:
                call = client.upload_part(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                )
                response = await self._call(key, call)
            finally:
                slots.release()
            parts.append({"ETag": response["ETag"], "PartNumber": number})

        file: IO[bytes] = await self._local(action, asyncio.to_thread(path.open, "rb"))
        try:
            async with asyncio.TaskGroup() as group:
                for number in itertools.count(1):
                    await slots.acquire()
                    read = asyncio.to_thread(file.read, part_bytes)
                    data = await self._local(action, read)
                    if not data:
                        break
                    group.create_task(send(number, data), name=f"s3-part-{number}")
        except BaseExceptionGroup as failures:
            # The first failure says why; the rest are usually the same outage.
            first = failures.exceptions[0]
            raise first from first.__cause__
        finally:
            await asyncio.to_thread(file.close)

        return sorted(parts, key=lambda part: part["PartNumber"])

    async def _abort(self, client: S3Client, key: str, upload_id: str) -> None:
        """Abort a multipart upload; a failure is logged, as the original error matters more."""
        try:
            async with asyncio.timeout(self.timeout):
                await client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id
                )
        except _S3_ERRORS as exc:
            # The parts stay invisible but billed until a lifecycle rule removes them.
            logger.warning(
                "cannot abort multipart upload %s of %s in %s: %s",
                upload_id,
                key,
                self.url,
                _reason(exc),
            )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
