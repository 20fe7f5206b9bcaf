"""Where lake files are stored: a local directory or an S3 bucket, behind one interface.

Keys are relative to the lake root, e.g.
`processed/year=2024/month=02/day=13/hour=16/part-<first received ms>-<writer id>-<seq>.parquet`.
A file appears whole or not at all: locally through a temporary name, fsync and an
atomic rename; on S3 through one PutObject of the complete bytes, or for a large file a
multipart upload, which S3 only makes visible when it is completed. `put_file` and
`get_file` move large files without holding them in memory. The S3 sink lives in
`hsl_live.s3`, loaded only for a lake on S3.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from hsl_live.errors import SinkError
from hsl_live.settings import Settings

TEMP_SUFFIX = ".tmp"


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

    async def put_file(self, key: str, path: Path) -> None:
        """Store a local file's contents under a key, never holding the whole file in memory."""
        ...

    async def get_file(self, key: str, path: Path) -> None:
        """Write an object into a local file in chunks; the file appears whole or not at all."""
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
        # The AWS SDK (about 20 MB) is loaded only for a lake on S3.
        from hsl_live.s3 import S3Sink

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

    async def put_file(self, key: str, path: Path) -> None:
        """Copy a file in through a temporary name in the same folder, fsync, then rename."""
        await asyncio.to_thread(self._put_file, key, path)

    async def get_file(self, key: str, path: Path) -> None:
        """Copy a lake file out to `path` through a temporary name beside it."""
        await asyncio.to_thread(self._get_file, key, path)

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
        try:
            self._install(key, lambda temp: temp.write_bytes(data))
        except OSError as exc:
            raise SinkError(f"cannot write {key} to {self.url}: {exc.strerror}") from exc

    def _put_file(self, key: str, source: Path) -> None:
        # copyfile uses sendfile(2) on Linux: the bytes never pass through Python.
        try:
            self._install(key, lambda temp: shutil.copyfile(source, temp))
        except OSError as exc:
            reason = f"{exc.strerror} ({exc.filename})"
            raise SinkError(f"cannot write {key} to {self.url} from {source}: {reason}") from exc

    def _install(self, key: str, fill: Callable[[Path], object]) -> None:
        """Fill a temporary file beside the key's path, fsync it, then rename it into place."""
        path = self._path(key)
        temp = temp_beside(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fill(temp)
            _fsync_file(temp)
            os.replace(temp, path)
            _fsync_dir(path.parent)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise

    def _get_file(self, key: str, target: Path) -> None:
        source = self._path(key)
        temp = temp_beside(target)
        try:
            shutil.copyfile(source, temp)
            os.replace(temp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            reason = f"{exc.strerror} ({exc.filename})"
            raise SinkError(f"cannot read {key} from {self.url} into {target}: {reason}") from exc

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


def temp_beside(path: Path) -> Path:
    """Return a unique temporary name in a file's folder, which `list` never returns."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _fsync_file(path: Path) -> None:
    with path.open("rb") as file:
        os.fsync(file.fileno())


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
