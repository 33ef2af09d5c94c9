"""Remotes and object stores from Python: clone, fetch, pull and push
through a directory remote and a real S3 server (SeaweedFS, which `make
test` installs), and a repository whose objects live in an object store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest

import udr

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from s3server import SeaweedFS  # noqa: E402  (the benchmarks' launcher: one recipe for both)


def night(n: int, rows: int = 2000) -> pd.DataFrame:
    return pd.DataFrame({"bbl": range(rows), "score": [(i * 7 + (n if i % 50 == n % 50 else 0)) * 1.0 for i in range(rows)]})


@pytest.fixture(scope="module")
def s3():
    """A SeaweedFS S3 server of this module's own, its keys in the environment as a user sets them."""
    venv = os.environ.get("UDR_S3_VENV")
    if not venv:
        pytest.fail("UDR_S3_VENV is not set: run the tests with `make test` (scripts/setup-s3.sh provisions SeaweedFS)")
    server = SeaweedFS(str(Path(venv) / "bin" / "weed"))
    server.create_bucket("udr-python")
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = server.access_key
    os.environ["AWS_SECRET_ACCESS_KEY"] = server.secret_key
    yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.close()


@pytest.fixture(params=["directory", "s3"])
def remote(request, tmp_path):
    """A new, empty remote location: (url, endpoint)."""
    if request.param == "directory":
        path = tmp_path / "remote"
        path.mkdir()
        return str(path), None
    server = request.getfixturevalue("s3")
    return f"s3://udr-python/{tmp_path.name}", server.endpoint


def test_push_clone_pull_and_a_refused_push(tmp_path, remote):
    url, endpoint = remote
    origin = udr.Repository.init(str(tmp_path / "origin"))
    origin.write("parcels", night(1), key=["bbl"], message="night 1")
    origin.add_remote("origin", url, endpoint=endpoint)
    assert [r["name"] for r in origin.remotes()] == ["origin"]
    pushed = origin.push()
    assert pushed["objects"] > 0 and pushed["bytesSent"] > 0

    copy = udr.Repository.clone(url, str(tmp_path / "copy"), endpoint=endpoint)
    assert copy.clone_report["objects"] == pushed["objects"]
    same = "SELECT count(*), sum(score) FROM parcels"
    assert copy.query(same).fetchall() == origin.query(same).fetchall()

    # Night 2 travels as that night's objects only, and a pull fast-forwards.
    origin.write("parcels", night(2), key=["bbl"], message="night 2")
    second = origin.push()
    assert 0 < second["objects"] < pushed["objects"]
    assert origin.push()["objects"] == 0, "nothing new: nothing sent"
    pulled = copy.pull()
    assert pulled["fetch"]["objects"] == second["objects"]
    assert copy.query(same).fetchall() == origin.query(same).fetchall()
    assert copy.log()[0]["id"] == origin.log()[0]["id"]

    # Diverged: the second push is refused, the remote keeps the first.
    origin.write("parcels", night(3), key=["bbl"], message="night 3")
    copy.write("parcels", night(4), key=["bbl"], message="night 4 elsewhere")
    origin.push()
    with pytest.raises(udr.ConflictError, match="not a fast-forward"):
        copy.push()
    copy.fetch()
    assert copy.query("SELECT count(*) FROM parcels", commit="origin/main").fetchall() == origin.query("SELECT count(*) FROM parcels").fetchall()
    copy.remove_remote("origin")
    assert copy.remotes() == []
    with pytest.raises(udr.NotFoundError):
        copy.fetch("origin")
    for repo in (origin, copy):
        assert repo.verify()["problems"] == []
        repo.close()


def test_a_repository_whose_objects_live_in_an_object_store(tmp_path, remote):
    url, endpoint = remote
    repo = udr.Repository.init(str(tmp_path / "repo"), store=url, endpoint=endpoint)
    for n in (1, 2, 3):
        repo.write("parcels", night(n), key=["bbl"], message=f"night {n}")
    assert not (tmp_path / "repo" / ".udr" / "objects").exists()
    assert repo.query("SELECT count(*) FROM parcels").fetchall() == [(2000,)]
    repo.expire(keep_last=1)
    assert repo.gc(grace=0)["objectsDeleted"] > 0
    assert repo.verify()["problems"] == []
    repo.close()
    again = udr.Repository.open(str(tmp_path / "repo"))
    assert again.query("SELECT sum(score) FROM parcels").fetchall() == [(float(night(3)["score"].sum()),)]
    again.close()
    with pytest.raises(udr.AlreadyExistsError):
        udr.Repository.init(str(tmp_path / "second"), store=url, endpoint=endpoint)
    with pytest.raises(ValueError, match="store"):
        udr.Repository.init(str(tmp_path / "third"), endpoint="http://127.0.0.1:1")
