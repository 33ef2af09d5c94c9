"""A SeaweedFS S3 server on 127.0.0.1 for the benchmarks' real sync: a
fresh data directory, killed and removed when done (the same recipe the
Swift tests use; `weed` comes from scripts/setup-s3.sh)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class SeaweedFS:
    def __init__(self, weed: str):
        self.weed = weed
        self.access_key = "udrbench"
        self.secret_key = "udrbench-" + os.urandom(4).hex()
        self.dir = Path(tempfile.mkdtemp(prefix="udr-weed-"))
        while True:
            self.port = random.randint(20000, 60000)
            if all(_free(self.port + i) for i in range(15)):
                break
        (self.dir / "s3.json").write_text(json.dumps({"identities": [{
            "name": "udr", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        p, d = self.port, self.dir
        (d / "data").mkdir()
        self.process = subprocess.Popen(
            [weed, "server", f"-dir={d}/data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-master.port={p + 1}", f"-volume.port={p + 2}",
             f"-filer.port={p + 3}", f"-master.port.grpc={p + 11}", f"-volume.port.grpc={p + 12}", f"-filer.port.grpc={p + 13}",
             f"-s3.port.grpc={p + 14}", "-volume.max=100", "-master.volumeSizeLimitMB=64", "-volume.preStopSeconds=0",
             f"-filer.localSocket={d}/filer.sock", f"-s3.localSocket={d}/s3.sock", "-s3", f"-s3.port={p}", f"-s3.config={d}/s3.json",
             "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while _free(p):
            if time.time() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("SeaweedFS did not start")
            time.sleep(0.1)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict:
        """What a client needs to reach it (credentials as AWS tools read them)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": "us-east-1"}

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        for i in (11, 12, 13):
            for f in Path("/tmp").glob(f"seaweedfs-*-grpc-{self.port + i}.sock"):
                f.unlink(missing_ok=True)
