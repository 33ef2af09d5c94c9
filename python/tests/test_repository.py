"""The Python package over the Swift library: writes, reads, SQL, transactions, history."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import udr


@pytest.fixture
def repo(tmp_path):
    repository = udr.Repository.init(str(tmp_path / "repo"))
    yield repository
    repository.close()


def parcels(n: int = 1000) -> pd.DataFrame:
    return pd.DataFrame(
        {"bbl": range(1_000_000, 1_000_000 + n), "status": ["active"] * n, "score": [i * 0.5 for i in range(n)]}
    )


def test_a_dataframe_round_trips_equal(repo):
    original = parcels()
    result = repo.write("parcels", original, key=["bbl"], message="night 1")
    assert result["rows"] == 1000 and result["commit"]["txID"] == 1
    back = repo.query("SELECT * FROM parcels ORDER BY bbl").to_pandas()
    assert original.equals(back)
    assert repo.query("SELECT count(*) AS n FROM parcels").fetchall() == [(1000,)]
    assert pl.from_arrow(repo.query("SELECT sum(score) AS s FROM parcels").to_arrow())["s"][0] == sum(i * 0.5 for i in range(1000))
    assert isinstance(repo.query("SELECT 1 AS x").to_polars(), pl.DataFrame)


def test_inputs_of_every_kind(repo):
    repo.write("a", pa.table({"k": [1, 2], "v": ["x", None]}), key=["k"])
    repo.write("b", pl.DataFrame({"k": [1, 2, 3]}), key=["k"])
    repo.write("c", [{"k": 1, "v": "one"}], key=[])
    assert repo.query("SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b) * 10 + (SELECT count(*) FROM c) * 100 AS n").fetchall() == [(132,)]
    assert repo.query("SELECT v FROM a WHERE k = 2").fetchall() == [(None,)]
    batches = list(repo.query("SELECT * FROM b").to_batches())
    assert sum(b.num_rows for b in batches) == 3


def test_versions_time_travel_and_changes(repo):
    repo.write("parcels", parcels(), key=["bbl"])
    first = repo.latest_tx_id()
    night2 = parcels()
    night2.loc[7, "status"] = "sold"
    repo.write("parcels", night2)
    assert repo.query("SELECT status FROM parcels WHERE bbl = 1000007").fetchall() == [("sold",)]
    assert repo.query("SELECT status FROM parcels WHERE bbl = 1000007", at={"parcels": 1}).fetchall() == [("active",)]
    assert repo.query("SELECT status FROM parcels WHERE bbl = 1000007", commit=f"tx:{first}").fetchall() == [("active",)]
    changes = repo.changes(since=first)
    assert len(changes) == 1 and changes[0]["tables"][0]["updated"] == 1
    diff = repo.diff("main~1", "main")
    assert diff["tables"][0]["rows"] == {"inserted": 0, "deleted": 0, "updated": 1}
    assert len(repo.diff_rows("main~1", "main")) == 1
    history = repo.history("parcels", {"bbl": 1000007}).to_pandas()
    assert list(history["status"]) == ["active", "sold"]


def test_sql_writes_and_row_verbs(repo):
    repo.sql("CREATE TABLE t (k INTEGER, v VARCHAR, PRIMARY KEY (k))")
    out = repo.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b') RETURNING k")
    assert out[0]["write"]["counts"]["inserted"] == 2 and out[0]["rows"]["rows"] == [[1], [2]]
    repo.upsert("t", pd.DataFrame({"k": [2, 3], "v": ["B", "c"]}))
    repo.append("t", pd.DataFrame({"k": [4], "v": ["d"]}))
    repo.update("t", set="v = upper(v)", where="k = 1")
    repo.delete("t", where="k = 3")
    repo.delete("t", keys=pd.DataFrame({"k": [4]}))
    assert repo.query("SELECT k, v FROM t ORDER BY k").fetchall() == [(1, "A"), (2, "B")]
    with pytest.raises(udr.DuplicateKeyError):
        repo.append("t", pd.DataFrame({"k": [1], "v": ["dup"]}))
    # pandas' int64 goes into the INTEGER key value by value; one out of range is an error.
    with pytest.raises(udr.UDRError, match="out of range|INT32"):
        repo.append("t", pd.DataFrame({"k": [2**40], "v": ["big"]}))
    with pytest.raises(udr.ReadOnlyError, match="udr sql"):
        repo.query("DELETE FROM t")
    with pytest.raises(udr.NotFoundError):
        repo.query("SELECT * FROM t", at={"t": 99})
    assert len(repo.log()) == 7


def test_a_transaction_commits_once_or_not_at_all(repo):
    repo.write("a", pd.DataFrame({"k": [1]}), key=["k"])
    before = len(repo.log())
    with repo.transaction(message="refresh") as tx:
        tx.write("a", pd.DataFrame({"k": [1, 2]}))
        tx.write("b", pd.DataFrame({"k": [9]}), key=["k"])
        assert tx.query("SELECT count(*) FROM a").fetchall() == [(2,)]
        assert repo.query("SELECT count(*) FROM a").fetchall() == [(1,)]
    assert len(repo.log()) == before + 1 and repo.log()[0]["commit"]["message"] == "refresh"
    with pytest.raises(RuntimeError):
        with repo.transaction() as tx:
            tx.write("a", pd.DataFrame({"k": [5, 6, 7]}))
            raise RuntimeError("the pipeline failed")
    assert repo.query("SELECT count(*) FROM a").fetchall() == [(2,)]
    assert len(repo.log()) == before + 1


def test_branches_merge_and_verify(repo):
    repo.write("master", pd.DataFrame({"bbl": [1, 2, 3], "score": [1.0, 2.0, 3.0]}), key=["bbl"])
    repo.create_branch("experiment")
    repo.sql("UPDATE master SET score = score * 2", branch="experiment")
    assert repo.query("SELECT sum(score) FROM master", branch="experiment").fetchall() == [(12.0,)]
    assert repo.query("SELECT sum(score) FROM master").fetchall() == [(6.0,)]
    assert [b["name"] for b in repo.branches()] == ["experiment", "main"]
    assert repo.merge("experiment")["outcome"] == "fast-forward"
    assert repo.query("SELECT sum(score) FROM master").fetchall() == [(12.0,)]
    assert repo.verify()["problems"] == []


def test_errors_carry_udrs_message_and_code(tmp_path):
    with pytest.raises(udr.UDRError) as raised:
        udr.Repository.open(str(tmp_path / "nowhere"))
    assert raised.value.code == "notARepository" and "udr init" in raised.value.message
    repo = udr.Repository.init(str(tmp_path / "r"))
    with pytest.raises(udr.QueryError, match="nope"):
        repo.query("SELECT * FROM nope")
    with pytest.raises(udr.InvalidArgumentError):
        repo.write("bad/name", pd.DataFrame({"k": [1]}))


def test_one_duckdb_in_the_process(repo):
    import os

    import duckdb

    repo.write("t", pd.DataFrame({"k": [1, 2, 3]}), key=["k"])
    # UDR runs on the duckdb package's own library when it is 1.5.5.
    assert os.environ["UDR_DUCKDB_LIBRARY"] == __import__("importlib").util.find_spec("_duckdb").origin
    assert duckdb.sql("SELECT 42").fetchall() == [(42,)]
    assert repo.query("SELECT sum(k) FROM t").fetchall() == [(6,)]
    # Results outlive the repository's handle and one another.
    first = repo.query("SELECT * FROM t").to_arrow()
    second = repo.query("SELECT k * 2 AS k FROM t").to_arrow()
    repo.close()
    assert first.column("k").to_pylist() == [1, 2, 3] and second.column("k").to_pylist() == [2, 4, 6]


def test_bad_input_is_an_error_with_udrs_message_and_changes_nothing(repo):
    repo.write("parcels", parcels(10), key=["bbl"])
    log = repo.log()
    refs = repo.branches()
    duplicated = pd.DataFrame({"bbl": [1, 2, 2], "status": ["a", "b", "c"], "score": [1.0, 2.0, 3.0]})
    with pytest.raises(udr.DuplicateKeyError) as raised:
        repo.write("parcels", duplicated)
    assert "bbl" in raised.value.message and raised.value.code == "duplicateKey"
    with pytest.raises(udr.DuplicateKeyError):
        repo.write("fresh", duplicated, key=["bbl"])
    with pytest.raises(udr.InvalidInputError, match="column status"):
        repo.write("parcels", pd.DataFrame({"bbl": [1, 2], "status": pd.Series(["a", 3.5], dtype=object), "score": [1.0, 2.0]}))
    with pytest.raises(udr.NotFoundError, match="no version 7"):
        repo.query("SELECT * FROM parcels", at={"parcels": 7})
    with pytest.raises(udr.NotFoundError, match="nightly"):
        repo.query("SELECT * FROM parcels", branch="nightly")
    with pytest.raises(udr.NotFoundError, match="nightly"):
        repo.write("parcels", parcels(10), branch="nightly")
    with pytest.raises(udr.NotFoundError):
        repo.checkout("nightly")
    with pytest.raises(udr.UDRError, match="4 hex digits|tx:N"):
        repo.query("SELECT 1", commit="zz")
    assert repo.log() == log and repo.branches() == refs and repo.current_branch() == "main"
    assert [t["name"] for t in repo.tables()] == ["parcels"]
    assert repo.query("SELECT count(*) FROM parcels").fetchall() == [(10,)]


def test_a_streamed_query_hands_over_batches_as_duckdb_makes_them(repo):
    import faulthandler

    repo.write("t", pa.table({"k": range(100_000), "c": pa.array(["x", "y"] * 50_000).dictionary_encode()}), key=["k"])
    batches = list(repo.query("SELECT * FROM t ORDER BY k", stream=True).to_batches())
    assert len(batches) > 1 and sum(b.num_rows for b in batches) == 100_000
    assert all(pa.types.is_dictionary(b.schema.field("c").type) for b in batches)
    assert pa.Table.from_batches(batches).column("k").to_pylist() == list(range(100_000))
    assert repo.query("SELECT count(*) AS n FROM t", stream=True).to_arrow().column("n").to_pylist() == [100_000]
    # Rows of a query that would never end: only the batches read are made
    # (the watchdog fails the run if the query were run to its end first).
    faulthandler.dump_traceback_later(120, exit=True)
    try:
        endless = repo.query("SELECT range FROM range(100000000000)", stream=True).to_batches()
        assert next(endless).num_rows > 0
        endless.close()
    finally:
        faulthandler.cancel_dump_traceback_later()
    with pytest.raises(udr.QueryError, match="nope"):
        repo.query("SELECT * FROM nope", stream=True)
    with pytest.raises(udr.InvalidArgumentError, match="one statement"):
        repo.query("SELECT 1; SELECT 2", stream=True)
    once = repo.query("SELECT 1 AS x", stream=True)
    assert list(once.to_batches())[0].num_rows == 1
    with pytest.raises(udr.InvalidArgumentError, match="handed out this result.s rows already"):
        once.to_arrow()
