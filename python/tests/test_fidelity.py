"""What a DataFrame or Arrow table is written as, it reads back as: dtypes,
Arrow types, column order and index."""

from __future__ import annotations

import datetime as dt
import decimal

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


def frame() -> pd.DataFrame:
    n = 6
    return pd.DataFrame(
        {
            "bbl": range(1, n + 1),
            "small": pd.Series(range(n), dtype="int16"),
            "units": pd.array([1, None, 3, None, 5, 6], dtype="Int64"),
            "area": [1.5, None, 2.25, -0.0, 1e300, 3.0],
            "flag": [True, False, True, True, False, False],
            "maybe": pd.array([True, None, False, None, True, False], dtype="boolean"),
            "name": ["a", None, "c", "d", "é", "f"],
            "owner": pd.Series(["x", "y", None, "z", "x", "y"], dtype=object),
            "seen": pd.to_datetime(["2024-01-01 00:00:00.000000001", None, "1969-07-20 20:17:40", "2024-02-29", "2000-01-01", "2024-06-01"], format="ISO8601"),
            "sold": pd.to_datetime(["2024-01-01 09:30", None, "2024-03-10 02:30", "2024-11-03 01:30", "2024-06-01", "2024-12-31 23:59"], format="ISO8601").tz_localize(
                "America/New_York", ambiguous=True, nonexistent="shift_forward"),
            "zone": pd.Categorical(["R6", "C1", "R6", None, "M1", "C1"], categories=["R6", "C1", "M1", "unused"], ordered=True),
            "kind": pd.Categorical(["a", "b", "a", "b", "a", "b"]),
            "price": [decimal.Decimal("1.10"), None, decimal.Decimal("123456.78"), decimal.Decimal("0.01"), decimal.Decimal("-5.00"), decimal.Decimal("7")],
        }
    )


def test_a_dataframe_reads_back_equal_with_its_dtypes(repo):
    original = frame()
    repo.write("parcels", original, key=["bbl"])
    back = repo.query("SELECT * FROM parcels ORDER BY bbl").to_pandas()
    assert list(back.columns) == list(original.columns)
    assert back.dtypes.to_dict() == original.dtypes.to_dict()
    assert list(back["zone"].cat.categories) == ["R6", "C1", "M1", "unused"] and back["zone"].cat.ordered
    assert isinstance(back.index, pd.RangeIndex)
    assert original.equals(back)
    # The migration plan's path gives the same frame.
    import udr_query

    engine = udr_query.QueryEngine(udr.PyChunkStore(repo.path), udr.PyCatalog(repo.path))
    assert original.equals(engine.query("SELECT * FROM parcels ORDER BY bbl").to_pandas())


def test_dtypes_outlive_edits_and_follow_the_columns_a_query_keeps(repo):
    original = frame()
    repo.write("parcels", original, key=["bbl"])
    repo.upsert("parcels", pd.DataFrame({
        "bbl": [2, 7], "small": pd.Series([1, 7], dtype="int16"), "units": pd.array([None, 70], dtype="Int64"), "area": [0.5, 7.0],
        "flag": [True, True], "maybe": pd.array([None, True], dtype="boolean"), "name": ["b", "g"], "owner": pd.Series(["w", "v"], dtype=object),
        "seen": pd.to_datetime(["2024-01-02", "2024-01-07"]).as_unit("ns"),
        "sold": pd.to_datetime(["2024-01-02", None]).as_unit("us").tz_localize("America/New_York"),
        "zone": ["C1", "X9"], "kind": ["b", "a"], "price": [decimal.Decimal("2.00"), None],
    }))
    repo.sql("UPDATE parcels SET units = units * 10 WHERE bbl = 1")
    back = repo.query("SELECT * FROM parcels ORDER BY bbl").to_pandas()
    assert back.dtypes.astype(str).to_dict() == original.dtypes.astype(str).to_dict()
    # A category written since comes after the stored ones.
    assert list(back["zone"].cat.categories) == ["R6", "C1", "M1", "unused", "X9"]
    assert back.loc[back["bbl"] == 1, "units"].item() == 10 and back.loc[back["bbl"] == 2, "units"].isna().item()
    assert str(back.loc[back["bbl"] == 7, "sold"].dtype) == "datetime64[us, America/New_York]"

    some = repo.query("SELECT zone, units, bbl FROM parcels WHERE bbl < 4 ORDER BY bbl").to_pandas()
    assert list(some.columns) == ["zone", "units", "bbl"]
    assert str(some["zone"].dtype) == "category" and str(some["units"].dtype) == "Int64"
    # A column an expression made, or renamed, has DuckDB's type.
    made = repo.query("SELECT upper(name) AS shout, zone AS z, units + 1 AS units FROM parcels ORDER BY bbl").to_arrow()
    assert made.schema.field("shout").type == pa.string() and made.schema.field("z").type == pa.string()
    # ALTER keeps the other columns' types; a retyped column takes its new one.
    repo.sql("ALTER TABLE parcels ALTER COLUMN small TYPE BIGINT")
    after = repo.query("SELECT * FROM parcels ORDER BY bbl").to_pandas()
    assert str(after["small"].dtype) == "int64" and str(after["zone"].dtype) == "category"
    # A write of new content forgets the old dtypes.
    repo.write("parcels", pa.table({"bbl": [1], "zone": ["R6"]}))
    assert repo.query("SELECT zone FROM parcels").to_arrow().schema.field("zone").type == pa.string()


def test_a_named_index_comes_back_as_the_index(repo):
    original = frame().set_index("bbl")
    repo.write("parcels", original, key=["bbl"])
    assert original.equals(repo.query("SELECT * FROM parcels ORDER BY bbl").to_pandas())
    # An unnamed index is row positions: not stored, a RangeIndex on read.
    repo.write("filtered", frame().iloc[[1, 3, 5]], key=["bbl"])
    back = repo.query("SELECT * FROM filtered ORDER BY bbl").to_pandas()
    assert isinstance(back.index, pd.RangeIndex) and back["bbl"].tolist() == [2, 4, 6] and "__index_level_0__" not in back.columns


def arrow_table() -> pa.Table:
    return pa.table({
        "k": pa.array([1, 2, 3], pa.int64()),
        "dec": pa.array([decimal.Decimal("1.10"), None, decimal.Decimal("-99999999999999.99")], pa.decimal128(16, 2)),
        "dec38": pa.array([decimal.Decimal("1" * 38), None, decimal.Decimal("0")], pa.decimal128(38, 0)),
        "ls": pa.array(["a", None, "ccc"], pa.large_string()),
        "sv": pa.array(["a", None, "ccc"], pa.string_view()),
        "lb": pa.array([b"a", None, b"\x00\xff"], pa.large_binary()),
        "ts_s": pa.array([1, None, -3], pa.timestamp("s")),
        "ts_ms": pa.array([1704112215123, None, -1], pa.timestamp("ms")),
        "ts_us": pa.array([dt.datetime(2024, 1, 1, 12, 30, 15, 123456), None, dt.datetime(1969, 7, 20, 20, 17, 40)], pa.timestamp("us")),
        "ts_ns": pa.array([1704112215123456789, None, -1], pa.timestamp("ns")),
        "tz_s": pa.array([1, None, -3], pa.timestamp("s", tz="Asia/Tokyo")),
        "tz_ms": pa.array([1, None, -3], pa.timestamp("ms", tz="UTC")),
        "tz_us": pa.array([1, None, -3], pa.timestamp("us", tz="+05:30")),
        "tz_ns": pa.array([1704112215123456000, None, -1000], pa.timestamp("ns", tz="America/New_York")),
        "d32": pa.array([dt.date(2024, 1, 1), None, dt.date(1, 1, 1)], pa.date32()),
        "d64": pa.array([dt.date(2024, 1, 1), None, dt.date(1970, 1, 2)], pa.date64()),
        "t64": pa.array([dt.time(1, 2, 3, 4), None, dt.time(23, 59, 59)], pa.time64("us")),
        "t32": pa.array([dt.time(1, 2, 3), None, dt.time(23, 59, 59)], pa.time32("s")),
        "dur": pa.array([1, None, -3], pa.duration("us")),
        "lst": pa.array([[1, 2], None, []], pa.list_(pa.int32())),
        "llst": pa.array([["x"], [None], None], pa.large_list(pa.large_string())),
        "fsl": pa.array([[1.0, 2.0], None, [3.0, 4.0]], pa.list_(pa.float64(), 2)),
        "st": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": "z"}], pa.struct([("a", pa.int16()), ("b", pa.string())])),
        "nested": pa.array([[{"p": [1.5]}], None, [{"p": None}]], pa.list_(pa.struct([("p", pa.list_(pa.float32()))]))),
        "mp": pa.array([[("a", 1)], None, []], pa.map_(pa.string(), pa.int64())),
        "dic": pa.array(["x", "y", None]).dictionary_encode(),
        "u8": pa.array([0, 255, None], pa.uint8()),
        "u64": pa.array([0, 2**64 - 1, None], pa.uint64()),
        "f32": pa.array([1.5, None, -0.0], pa.float32()),
    })


def test_arrow_types_read_back_as_written(repo):
    original = arrow_table()
    repo.write("t", original, key=["k"])
    back = repo.query("SELECT * FROM t ORDER BY k").to_arrow()
    for field in original.schema:
        assert back.schema.field(field.name).type.equals(field.type), field.name
        assert back.column(field.name).equals(original.column(field.name)), field.name
    # Streamed batch by batch, and into polars, the same types.
    batches = list(repo.query("SELECT * FROM t ORDER BY k").to_batches())
    assert pa.Table.from_batches(batches).equals(back)
    # (polars takes no fixed-offset time zone such as +05:30)
    assert pl.from_arrow(back.drop_columns(["tz_us"])).schema == pl.from_arrow(original.drop_columns(["tz_us"])).schema
    # Written from a stream (any __arrow_c_stream__) too, dictionaries included.
    repo.write("streamed", pa.RecordBatchReader.from_batches(original.schema, original.to_batches()), key=["k"])
    assert repo.query("SELECT * FROM streamed ORDER BY k").to_arrow().equals(back)


def test_joins_keep_each_tables_types(repo):
    repo.write("a", pa.table({"k": [1, 2], "tag": pa.array(["x", "y"]).dictionary_encode()}), key=["k"])
    repo.write("b", pa.table({"k": [1, 2], "seen": pa.array([5, 6], pa.timestamp("s", tz="Europe/Paris"))}), key=["k"])
    joined = repo.query("SELECT a.k, tag, seen FROM a JOIN b USING (k) ORDER BY k").to_arrow()
    assert pa.types.is_dictionary(joined.schema.field("tag").type)
    assert joined.schema.field("seen").type == pa.timestamp("s", tz="Europe/Paris")


def test_values_a_type_cannot_keep_are_refused(repo):
    repo.write("t", pa.table({"k": [1], "v": ["x"]}), key=["k"])
    log = repo.log()
    nanos = pa.table({"k": [2], "at": pa.array([1704112215123456789], pa.timestamp("ns", tz="UTC"))})
    with pytest.raises(udr.InvalidInputError, match="at holds times with a time zone and nanoseconds"):
        repo.write("t", nanos)
    mixed = pd.DataFrame({"k": [1, 2], "v": pd.Series(["x", 2], dtype=object)})
    with pytest.raises(udr.InvalidInputError, match="column v"):
        repo.write("t", mixed)
    assert repo.log() == log
    assert repo.query("SELECT * FROM t").fetchall() == [(1, "x")]
