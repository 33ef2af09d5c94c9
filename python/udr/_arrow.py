"""Arrow and pandas types through UDR: what a table's writer gave, back on read.

DuckDB keeps every value but not every Arrow type: a dictionary column
comes back as strings, a large string as a string, a timestamp's time zone
as UTC, and pandas' own dtypes (nullable ``Int64``, ``category``, ``object``
strings) live only in the schema's ``pandas`` metadata. So a write sends the
rows' schema along (a compressed Arrow IPC stream: the schema with its
metadata, and a batch of no rows holding the dictionaries); UDR keeps it
with the table version (row edits keep it, a new write replaces it), and a
query result
is cast back to it column by column, where a column of the result still
has the stored column's name and the type DuckDB gives that stored type.
A column an expression made, a renamed or retyped one, keeps DuckDB's type.
"""

from __future__ import annotations

import base64
import functools
import json
import zlib
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# A dictionary larger than this is not stored with the schema: such a
# column comes back dictionary-encoded in the order its values appear.
_MAX_DICTIONARY_VALUES = 65_536


def from_pandas(frame: Any) -> pa.Table:
    """A DataFrame as Arrow. Named index levels are data and become columns
    (restored as the index on read); an unnamed index is row positions and
    is dropped (a read gives a RangeIndex)."""
    keep_index = any(name is not None for name in frame.index.names)
    return pa.Table.from_pandas(frame, preserve_index=keep_index)


def for_duckdb(table: pa.Table) -> pa.Table:
    """The table with what DuckDB would take otherwise than it is made
    plain: a time zone's nanoseconds go to microseconds (DuckDB's
    TIMESTAMPTZ), and only when no value has a finer part, which would be
    lost: then it is an error naming the column."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None and field.type.unit == "ns":
            try:
                column = table.column(i).cast(pa.timestamp("us", tz=field.type.tz), safe=True)
            except pa.ArrowInvalid as error:
                raise ValueError(
                    f"column {field.name} holds times with a time zone and nanoseconds, which DuckDB's TIMESTAMPTZ "
                    "cannot keep (it holds microseconds): round them to microseconds, or drop the time zone "
                    f"(pandas: .dt.tz_convert(None)) to keep nanoseconds as UTC ({error})"
                ) from error
            table = table.set_column(i, pa.field(field.name, column.type, nullable=field.nullable), column)
    return table


def in_key_order(table: pa.Table, key: list[str] | None) -> bool:
    """Whether the rows ascend by a one-column key (a hint: UDR then reads
    them as they come and checks the order instead of sorting them)."""
    if not key or len(key) != 1 or key[0] not in table.column_names or table.num_rows < 2:
        return False
    column = table.column(key[0])
    t = column.type
    if column.null_count or not (pa.types.is_integer(t) or pa.types.is_temporal(t) or _stringlike(t)):
        return False
    return not pc.any(pc.less_equal(column[1:], column[:-1])).as_py()


def _kept_by_duckdb(t: pa.DataType) -> bool:
    """Whether DuckDB gives this type back as it is."""
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_decimal128(t):
        return True
    if t in (pa.float32(), pa.float64(), pa.string(), pa.binary(), pa.date32()):
        return True
    if pa.types.is_timestamp(t):
        return t.tz is None and t.unit in ("us", "ns")
    if pa.types.is_list(t):
        return _kept_by_duckdb(t.value_type)
    if pa.types.is_struct(t):
        return all(_kept_by_duckdb(t.field(i).type) for i in range(t.num_fields))
    return False


def encode_schema(schema: pa.Schema, first: pa.RecordBatch | None) -> str | None:
    """The schema to keep with the table version (None when DuckDB keeps
    every type and there is no metadata to keep); `first` gives the
    dictionaries."""
    if not schema.metadata and all(_kept_by_duckdb(field.type) for field in schema):
        return None
    dictionaries = [i for i, field in enumerate(schema) if pa.types.is_dictionary(field.type)]
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        if first is not None and dictionaries and all(len(first.column(i).dictionary) <= _MAX_DICTIONARY_VALUES for i in dictionaries):
            writer.write_batch(first.slice(0, 0))
    # Compressed: it is stored with every version of the table (1-1.5 KB
    # for 10-30 columns, where the stream is 2-4.5 KB).
    return base64.b64encode(zlib.compress(sink.getvalue().to_pybytes(), 9)).decode("ascii")


class StoredSchema:
    """A table's stored Arrow schema, with its dictionaries by column."""

    def __init__(self, schema: pa.Schema, dictionaries: dict[str, pa.Array]) -> None:
        self.schema = schema
        self.dictionaries = dictionaries
        pandas = (schema.metadata or {}).get(b"pandas")
        self.pandas: dict[str, Any] | None = json.loads(pandas) if pandas else None


@functools.lru_cache(maxsize=256)
def decode_schema(text: str) -> StoredSchema:
    reader = pa.ipc.open_stream(pa.py_buffer(zlib.decompress(base64.b64decode(text))))
    dictionaries: dict[str, pa.Array] = {}
    for batch in reader:
        for i, field in enumerate(reader.schema):
            if pa.types.is_dictionary(field.type):
                dictionaries[field.name] = batch.column(i).dictionary
    return StoredSchema(reader.schema, dictionaries)


def _stringlike(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _binarylike(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t)


def _listlike(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t)


def lowers_to(stored: pa.DataType, result: pa.DataType) -> bool:
    """Whether `result` is the type DuckDB gives a column stored as `stored`."""
    if stored.equals(result):
        return True
    if pa.types.is_dictionary(stored):
        return lowers_to(stored.value_type, result)
    if _stringlike(stored):
        return _stringlike(result)
    if _binarylike(stored):
        return _binarylike(result)
    if pa.types.is_timestamp(stored):
        return pa.types.is_timestamp(result) and (stored.tz is None) == (result.tz is None)
    if pa.types.is_date(stored):
        return pa.types.is_date(result)
    if pa.types.is_time(stored):
        return pa.types.is_time(result)
    if pa.types.is_duration(stored):
        return pa.types.is_interval(result) or pa.types.is_duration(result)
    if pa.types.is_float16(stored):
        return result == pa.float32()
    if _listlike(stored):
        return _listlike(result) and lowers_to(stored.value_type, result.value_type)
    if pa.types.is_struct(stored):
        return (
            pa.types.is_struct(result) and stored.num_fields == result.num_fields
            and all(
                stored.field(i).name == result.field(i).name and lowers_to(stored.field(i).type, result.field(i).type)
                for i in range(stored.num_fields)
            )
        )
    if pa.types.is_map(stored):
        return pa.types.is_map(result) and lowers_to(stored.key_type, result.key_type) and lowers_to(stored.item_type, result.item_type)
    return False


def _cast(column: pa.ChunkedArray, field: pa.Field, dictionary: pa.Array | None) -> pa.ChunkedArray | None:
    """The column in the stored type, or None when a value would not survive."""
    target = field.type
    try:
        if pa.types.is_dictionary(target):
            values = column.cast(target.value_type)
            if dictionary is None:
                return pc.dictionary_encode(values).cast(target)
            indices = pc.index_in(values, value_set=dictionary)
            if indices.null_count != values.null_count:
                # Values written since (an upsert's new category) follow the stored ones.
                new = pc.unique(values.filter(pc.and_(pc.is_null(indices), pc.is_valid(values))))
                new = new.combine_chunks() if isinstance(new, pa.ChunkedArray) else new
                dictionary = pa.concat_arrays([dictionary, new.cast(dictionary.type)])
                indices = pc.index_in(values, value_set=dictionary)
            chunks = [
                pa.DictionaryArray.from_arrays(chunk.cast(target.index_type), dictionary, ordered=target.ordered)
                for chunk in indices.chunks
            ]
            return pa.chunked_array(chunks, type=target)
        if pa.types.is_duration(target) and pa.types.is_interval(column.type):
            return _durations(column, target)
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


_NANOS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _durations(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray | None:
    """DuckDB's INTERVALs (months, days, nanoseconds) as the durations they
    were written from; None if one has months or a finer part than the unit."""
    import numpy as np

    layout = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanos", "<i8")])
    factor = _NANOS[target.unit]
    chunks = []
    for chunk in column.chunks:
        values = np.frombuffer(chunk.buffers()[1], dtype=layout, count=chunk.offset + len(chunk))[chunk.offset:]
        valid = np.asarray(chunk.is_valid())
        nanos = values["days"].astype(np.int64) * 86_400_000_000_000 + values["nanos"]
        if (values["months"][valid] != 0).any() or (nanos[valid] % factor != 0).any():
            return None
        chunks.append(pa.array(nanos // factor, type=target, mask=~valid))
    return pa.chunked_array(chunks, type=target)


class Restorer:
    """Casts a result's columns back to the stored types of the tables read."""

    def __init__(self, schemas: dict[str, str]) -> None:
        self.stored = [decode_schema(text) for _, text in sorted(schemas.items())]

    def __bool__(self) -> bool:
        return bool(self.stored)

    def _target(self, field: pa.Field) -> tuple[pa.Field, pa.Array | None, StoredSchema] | None:
        found = []
        for stored in self.stored:
            index = stored.schema.get_field_index(field.name)
            if index >= 0 and lowers_to(stored.schema.field(index).type, field.type):
                found.append((stored.schema.field(index), stored.dictionaries.get(field.name), stored))
        if not found or any(not f.type.equals(found[0][0].type) for f, _, _ in found):
            return None  # not a stored column, or two tables disagree on it
        return found[0]

    def restore(self, table: pa.Table) -> pa.Table:
        if not self.stored:
            return table
        columns = []
        fields = []
        entries = []
        sources = set()
        for i, field in enumerate(table.schema):
            column = table.column(i)
            target = self._target(field)
            cast = None if target is None else (column if target[0].type.equals(field.type) else _cast(column, target[0], target[1]))
            if cast is None:
                columns.append(column)
                fields.append(field)
                continue
            columns.append(cast)
            fields.append(pa.field(field.name, cast.type, nullable=field.nullable))
            sources.add(id(target[2]))
            entry = _pandas_entry(target[2], field.name)
            if entry is not None:
                entries.append(entry)
        metadata = self._pandas_metadata(table.schema.names, entries, sources)
        schema = pa.schema(fields, metadata={b"pandas": json.dumps(metadata).encode()} if metadata else None)
        return pa.Table.from_arrays(columns, schema=schema)

    def _pandas_metadata(self, names: list[str], entries: list[dict[str, Any]], sources: set[int]) -> dict[str, Any] | None:
        whole = [s for s in self.stored if id(s) in sources and s.pandas and s.schema.names == names]
        if len(sources) == 1 and whole:
            return whole[0].pandas  # the table as written: its index too
        first = next((s.pandas for s in self.stored if s.pandas), None)
        if first is None or not entries:
            return None
        return {**first, "index_columns": [], "column_indexes": first.get("column_indexes", []), "columns": entries}


def _pandas_entry(stored: StoredSchema, name: str) -> dict[str, Any] | None:
    for entry in (stored.pandas or {}).get("columns", []):
        if entry.get("field_name", entry.get("name")) == name:
            return entry
    return None


def object_columns(table: pa.Table) -> list[str]:
    """Columns pandas held as ``object`` strings when written (pyarrow gives
    them back as ``str``)."""
    pandas = (table.schema.metadata or {}).get(b"pandas")
    if not pandas:
        return []
    return [
        entry["name"] for entry in json.loads(pandas).get("columns", [])
        if entry.get("numpy_type") == "object" and entry.get("pandas_type") in ("unicode", "bytes") and entry.get("name") in table.column_names
    ]


def to_pandas(table: pa.Table) -> Any:
    frame = table.to_pandas()
    for name in object_columns(table):
        if name in frame.columns and frame[name].dtype != object:
            series = frame[name]
            frame[name] = series.astype(object).where(series.notna(), None)
    return frame
