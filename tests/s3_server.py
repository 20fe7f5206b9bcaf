"""A moto S3 server on a free local port, for the integration tests of the lake."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer


def free_port() -> int:
    """Return a TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class S3Server:
    """moto's S3 in server mode; stopping it closes the port, so clients see a refusal.

    moto keeps its buckets in process memory, so objects survive a stop and restart.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.bucket = f"lake-{secrets.token_hex(4)}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        """Listen on the port."""
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        """Stop answering and close the listening socket."""
        if self._server is not None:
            self._server.stop()
            if self._server._server is not None:
                self._server._server.server_close()
            self._server = None

    def object_keys(self, prefix: str = "") -> list[str]:
        """Return the sorted object keys under a prefix of the bucket."""
        client = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the standard AWS credential chain at fake values only."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """Start moto's S3 on a free port with a new empty bucket; stop it afterwards."""
    fake_aws_credentials(monkeypatch)
    server = S3Server(free_port())
    server.start()
    client = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1")
    client.create_bucket(Bucket=server.bucket)
    yield server
    server.stop()
