"""The migration plan's phases A–E through its own calls (udr.PyChunkStore,
udr.PyCatalog, udr_query.QueryEngine …), on generated parcel data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import udr
import udr_query


def parcel_data(n: int = 5000, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A source table and the master table keyed by ``bbl``."""
    rng = np.random.default_rng(seed)
    bbl = np.arange(1_000_000_000, 1_000_000_000 + n, dtype=np.int64)
    source = pd.DataFrame({"bbl": bbl, "land_use": rng.integers(1, 12, n), "assessed": rng.normal(500_000, 90_000, n).round(2)})
    master = pd.DataFrame(
        {"bbl": bbl, "borough": rng.choice(["MN", "BX", "BK", "QN", "SI"], n), "score": rng.random(n).round(6), "flag": rng.random(n) < 0.1}
    )
    return source, master


@pytest.fixture
def engine(tmp_path):
    store = udr.PyChunkStore(str(tmp_path / "chunks"))
    catalog = udr.PyCatalog(str(tmp_path / "catalog.db"))
    return udr_query.QueryEngine(
        store, catalog, branch_manager=udr.PyBranchManager(catalog), transaction_manager=udr.PyTransactionManager(catalog)
    )


def read(engine, table: str, **kwargs) -> pd.DataFrame:
    return engine.query(f"SELECT * FROM {table} ORDER BY bbl", **kwargs).to_pandas()


def test_phases_a_to_e(engine):
    source, master = parcel_data()

    # Phase A: both written, and equal to the original DataFrames.
    engine.write_table("pluto_source", source, key_columns=["bbl"])
    first = engine.write_table("master", master, key_columns=["bbl"])
    assert first["version"] == 1
    for original, name in ((source, "pluto_source"), (master, "master")):
        udr_data = read(engine, name)
        assert original.equals(udr_data)

    # Phase B: a second version, and time travel to the first.
    night2 = master.copy()
    night2.loc[night2.index[:25], "score"] = 0.0
    assert engine.write_table("master", night2)["version"] == 2
    assert read(engine, "master").equals(night2)
    assert read(engine, "master", versions={"master": 1}).equals(master)

    # Phase C: an atomic multi-table refresh, rolled back by an exception.
    before = engine.latest_tx_id()
    with pytest.raises(RuntimeError):
        with engine.transaction() as tx:
            tx.write_table("pluto_source", source.assign(land_use=0))
            tx.write_table("master", night2.assign(score=1.0))
            raise RuntimeError("validation failed")
    assert engine.latest_tx_id() == before
    assert read(engine, "master").equals(night2) and read(engine, "pluto_source").equals(source)

    # Phase D: the phased pipeline; phase 2 fails, nothing of the run stays, the rerun commits once.
    checkpoint = engine.latest_tx_id()

    def run(fail_in_phase_2: bool) -> None:
        with engine.transaction(message="nightly refresh") as tx:
            tx.write_table("pluto_source", source.assign(assessed=source["assessed"] * 1.02))  # phase 1
            if fail_in_phase_2:
                raise ValueError("phase 2: scoring failed")
            scored = night2.copy()
            scored.loc[scored.index[100:110], "score"] = 0.5  # phase 2: ten parcels rescored
            tx.write_table("master", scored)

    with pytest.raises(ValueError):
        run(fail_in_phase_2=True)
    assert engine.get_changes(since_tx_id=checkpoint) == []
    run(fail_in_phase_2=False)
    changes = engine.get_changes(since_tx_id=checkpoint)
    assert len(changes) == 1 and changes[0]["tx_id"] == checkpoint + 1
    touched = {c["table_name"]: c for c in changes[0]["changes"]}
    assert set(touched) == {"pluto_source", "master"}
    assert (touched["master"]["old_version"], touched["master"]["new_version"]) == (2, 3)
    assert touched["master"]["rows_updated"] == 10

    # Phase E: what changed between versions, and a branch experiment.
    diff = engine.diff_versions("master", 2, 3, key_columns=["bbl"])
    assert len(diff["rows_modified"]) == 10 and diff["rows_added"] == [] and diff["rows_removed"] == []
    assert {row["score"] for row in diff["rows_modified"]} == {0.5}
    engine.create_branch("experiment/new-weights")
    engine.checkout("experiment/new-weights")
    reweighted = read(engine, "master")
    reweighted["score"] = (reweighted["score"] * 1.5).round(6)
    engine.write_table("master", reweighted)
    engine.checkout("main")
    compared = engine.query(
        "SELECT (SELECT avg(score) FROM master) AS main, (SELECT avg(score) FROM exp) AS experiment",
        versions={"exp": "master@experiment/new-weights"},
    ).fetchall()[0]
    assert compared[1] == pytest.approx(compared[0] * 1.5, rel=1e-4)
    assert engine.merge_branch("experiment/new-weights", into="main")["outcome"] == "fast-forward"
    assert read(engine, "master").equals(reweighted)


def test_bad_input_raises_and_changes_nothing(engine):
    source, master = parcel_data(100)
    engine.write_table("master", master, key_columns=["bbl"])
    tx = engine.latest_tx_id()
    with pytest.raises(udr.DuplicateKeyError, match="more than once"):
        engine.write_table("master", pd.concat([master, master.head(3)]))
    with pytest.raises(udr.UDRError):
        engine.write_table("master", master.assign(score=[1, "x"] * 50))
    with pytest.raises(udr.NotFoundError, match="no version 7"):
        engine.query("SELECT * FROM master", versions={"master": 7})
    with pytest.raises(udr.UDRError, match="nope"):
        engine.query("SELECT * FROM master", branch="nope")
    assert engine.latest_tx_id() == tx and read(engine, "master").equals(master)
