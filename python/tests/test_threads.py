"""Several Python threads on one repository at once."""

from __future__ import annotations

import faulthandler
import os
import signal
import threading

import pandas as pd
import pytest

import udr


def test_four_threads_query_and_write_at_once(tmp_path):
    repo = udr.Repository.init(str(tmp_path / "repo"))
    repo.write("shared", pd.DataFrame({"k": range(10_000), "v": [0] * 10_000}), key=["k"])
    failures: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for round_ in range(5):
                repo.write(f"own_{worker}", pd.DataFrame({"k": range(1000), "round": [round_] * 1000}), key=["k"])
                repo.upsert("shared", pd.DataFrame({"k": [worker * 1000 + round_], "v": [worker + 1]}))
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    def reader() -> None:
        try:
            for _ in range(20):
                assert repo.query("SELECT count(*) FROM shared").fetchall() == [(10_000,)]
        except BaseException as error:  # noqa: BLE001
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)] + [threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert repo.query("SELECT count(*) FROM shared WHERE v > 0").fetchall() == [(15,)]
    for worker in range(3):
        assert repo.query(f"SELECT max(round) FROM own_{worker}").fetchall() == [(4,)]
    assert repo.verify()["problems"] == []


def test_ctrl_c_interrupts_a_long_query(tmp_path):
    repo = udr.Repository.init(str(tmp_path / "repo"))
    repo.write("t", pd.DataFrame({"k": range(10)}), key=["k"])
    # Hours of work unless interrupted: if Ctrl-C did not reach DuckDB, the
    # watchdog ends the test run (as a failure) after two minutes.
    faulthandler.dump_traceback_later(120, exit=True)
    threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGINT)).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            repo.query("SELECT count(*) FROM range(1000000) a, range(1000000) b WHERE a.range + b.range = -1")
    finally:
        faulthandler.cancel_dump_traceback_later()
    # The repository goes on serving reads and writes.
    assert repo.query("SELECT count(*) FROM t").fetchall() == [(10,)]
    repo.append("t", pd.DataFrame({"k": [10]}))
    assert repo.query("SELECT max(k) FROM t").fetchall() == [(10,)]


def test_ctrl_c_interrupts_a_streamed_query_between_and_inside_batches(tmp_path):
    repo = udr.Repository.init(str(tmp_path / "repo"))
    faulthandler.dump_traceback_later(120, exit=True)
    try:
        # While the first batch is made (the query finds no row for hours) …
        threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            repo.query("SELECT a.range FROM range(100000000000) a WHERE hash(a.range) = 7", stream=True)
        # … and while batches are read.
        rows = repo.query("SELECT range, hash(range) AS h FROM range(100000000000)", stream=True)
        threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGINT)).start()
        read = 0
        with pytest.raises(KeyboardInterrupt):
            for batch in rows.to_batches():
                read += batch.num_rows
        assert read > 0
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert repo.query("SELECT 42").fetchall() == [(42,)]
