"""The nightly-refresh workload: a master table of parcels keyed by `bbl`
and 77 source tables, refreshed thirty times.

Everything is generated from one seed, night by night. Each night yields,
per table, the full snapshot (what a pipeline that rewrites its output
writes) and the change against the night before (what a pipeline writing
row by row applies): keys deleted, rows updated (key and changed columns),
rows inserted, and columns added. Both describe the same data, so every
system ends every night holding the same tables.

Rows are kept as numbers (codes into fixed dictionaries for text); a
snapshot is rendered from them by DuckDB, deterministically, so a row that
did not change renders to the same bytes every night.
"""

from __future__ import annotations

import dataclasses
import struct

import duckdb
import numpy as np
import pyarrow as pa

MASTER_ROWS = 856_000
SOURCE_TABLES = 77
EVENT_TABLES = 12  # time-ordered: rows appended nightly; the rest are reference tables
SMALLEST_SOURCE = 250_000  # bytes of Parquet at scale 1
LARGEST_SOURCE = 50_000_000
SOURCE_BYTES_PER_ROW = 40  # measured: what one source row takes in Parquet (snappy)

VARIANTS = ("mixed", "sparse-updates", "appends")

STATUSES = ["ACTIVE", "PENDING", "REVIEW", "HOLD", "CLOSED", "APPEAL", "EXEMPT", "VACANT"]
BUILDING_CLASSES = [f"{c}{d}" for c in "ABCDEFGHKLMOR" for d in range(1, 4)]
ZONINGS = [f"{p}{n}-{s}" for p in ("R", "C", "M") for n in range(1, 9) for s in (1, 2)]
TAX_CLASSES = ["1", "1A", "1B", "2", "2A", "2B", "3", "4"]
FLOOD_ZONES = ["X", "AE", "VE", "A", "AO", "SHADED X"]
EVENT_KINDS = ["PERMIT", "COMPLAINT", "VIOLATION", "SALE", "INSPECTION", "LIEN", "FILING", "HEARING"]
WORDS = ["north", "south", "repair", "facade", "boiler", "roof", "elevator", "plumbing", "electric", "window",
         "sidewalk", "gas", "heat", "water", "structural", "demolition", "alteration", "signage", "fence", "egress"]

EPOCH = np.datetime64("2026-01-01")


def _text(codes: np.ndarray, values: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(values, pa.string())).cast(pa.string())


def _wkb_squares(lon: np.ndarray, lat: np.ndarray, half: np.ndarray) -> pa.Array:
    """A square polygon per row as little-endian WKB (93 bytes each)."""
    n = len(lon)
    header = struct.pack("<BIII", 1, 3, 1, 5)
    xs = np.stack([lon - half, lon + half, lon + half, lon - half, lon - half], axis=1)
    ys = np.stack([lat - half, lat - half, lat + half, lat + half, lat - half], axis=1)
    points = np.ascontiguousarray(np.stack([xs, ys], axis=2).astype("<f8")).view(np.uint8).reshape(n, 80)
    body = np.concatenate([np.frombuffer(header * n, np.uint8).reshape(n, len(header)), points], axis=1)
    width = body.shape[1]
    offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
    return pa.Array.from_buffers(pa.binary(), n, [None, offsets.buffers()[1], pa.py_buffer(body.tobytes())])


@dataclasses.dataclass
class Change:
    """One table's change against the night before."""

    deleted: pa.Array  # keys
    updated: pa.Table  # key + changed columns, new values
    inserted: pa.Table  # whole rows
    added_columns: list[tuple[str, str]]  # (name, DuckDB type), filled for every row

    @property
    def empty(self) -> bool:
        return len(self.deleted) == 0 and self.updated.num_rows == 0 and self.inserted.num_rows == 0 and not self.added_columns


@dataclasses.dataclass
class TableNight:
    name: str
    key: str
    snapshot: pa.Table
    change: Change | None  # None on the first night (the table is created)
    refreshed: bool  # whether the source refreshed or the table changed this night (replace-style writers rewrite it)


class Table:
    """One table's rows as numpy columns; `render` turns them into Arrow."""

    def __init__(self, name: str, key: str, columns: dict[str, np.ndarray]):
        self.name = name
        self.key = key
        self.columns = columns
        self.added: list[tuple[str, str]] = []

    @property
    def rows(self) -> int:
        return len(self.columns[self.key])

    def keys(self) -> np.ndarray:
        return self.columns[self.key]

    def take(self, mask_or_index) -> dict[str, np.ndarray]:
        return {name: values[mask_or_index] for name, values in self.columns.items()}

    def append(self, new: dict[str, np.ndarray]) -> None:
        for name in self.columns:
            self.columns[name] = np.concatenate([self.columns[name], new[name]])

    def delete(self, mask: np.ndarray) -> None:
        for name in self.columns:
            self.columns[name] = self.columns[name][~mask]

    # Columns kept as codes into these values, rendered as text.
    TEXTS: dict[str, list[str]] = {}
    # The SELECT list that renders the columns of `raw` (added columns follow).
    projection = ""

    def derived(self, c: dict[str, np.ndarray]) -> dict[str, pa.Array]:
        """Columns computed from others when rendered."""
        return {}

    def render(self, columns: dict[str, np.ndarray] | None = None, only: list[str] | None = None) -> pa.Table:
        """`columns` (default: all rows) as the table's rows, in key order."""
        c = self.columns if columns is None else columns
        raw = pa.table({name: _text(v, self.TEXTS[name]) if name in self.TEXTS else v for name, v in c.items()} | self.derived(c))
        added = "".join(f", {name}::{kind} AS {name}" for name, kind in self.added)
        return _project(f"SELECT {self.projection}{added} FROM raw ORDER BY {self.key}", raw, only)


def extra_values(keys: np.ndarray, night: int) -> np.ndarray:
    """The values of the column added on `night`."""
    return ((keys * night) % 997).astype(np.int32)


class Master(Table):
    TEXTS = {"status": STATUSES, "bldg_class": BUILDING_CLASSES, "zoning": ZONINGS, "tax_class": TAX_CLASSES, "flood_zone": FLOOD_ZONES}

    def derived(self, c):
        return {"geom": _wkb_squares(c["longitude"], c["latitude"], np.sqrt(c["lot_area"]) * 4.5e-6)}

    projection = """
        bbl, borough::SMALLINT AS borough, block, lot,
               house_no::VARCHAR || ' ' || 'STREET ' || street::VARCHAR AS address,
               zipcode::VARCHAR AS zipcode, 'OWNER ' || owner::VARCHAR || ' LLC' AS owner_name,
               bldg_class, land_use::SMALLINT AS land_use, zoning, lot_area, bldg_area,
               (floors_tenths / 10)::DECIMAL(5,1) AS num_floors, units_res, units_total,
               year_built::SMALLINT AS year_built, year_altered::SMALLINT AS year_altered,
               (assessed_land_cents / 100)::DECIMAL(14,2) AS assessed_land,
               (assessed_total_cents / 100)::DECIMAL(14,2) AS assessed_total,
               (exempt_total_cents / 100)::DECIMAL(14,2) AS exempt_total,
               (market_value_cents / 100)::DECIMAL(14,2) AS market_value,
               tax_class, latitude, longitude, x_coord, y_coord,
               community_district::SMALLINT AS community_district, council_district::SMALLINT AS council_district,
               census_tract, school_district::SMALLINT AS school_district, police_precinct::SMALLINT AS police_precinct,
               'E' || fire_company::VARCHAR AS fire_company, status,
               (DATE '2026-01-01' + status_day::INTEGER) AS status_date,
               (DATE '2000-01-01' + sale_day::INTEGER) AS last_sale_date,
               (sale_price_cents / 100)::DECIMAL(14,2) AS last_sale_price,
               landmark, flood_zone,
               (score_a_e4 / 10000)::DECIMAL(12,4)::DOUBLE AS score_a,
               (score_b_e4 / 10000)::DECIMAL(12,4)::DOUBLE AS score_b,
               geom"""


class Source(Table):
    TEXTS = {"kind": EVENT_KINDS, "status": STATUSES}

    @property
    def projection(self) -> str:
        return f"""
        {self.key}, bbl, (DATE '2026-01-01' + day::INTEGER) AS event_date, kind,
               (amount_cents / 100)::DECIMAL(12,2) AS amount, status,
               kind || ' ' || word_a::VARCHAR || '/' || word_b::VARCHAR AS description,
               (value_e3 / 1000)::DECIMAL(12,3)::DOUBLE AS value"""


_renderer = duckdb.connect()
_renderer.execute("SET threads = 1")  # the same bytes on every run


def _project(sql: str, raw: pa.Table, only: list[str] | None) -> pa.Table:
    _renderer.register("raw", raw)
    try:
        table = _renderer.sql(sql).to_arrow_table()
    finally:
        _renderer.unregister("raw")
    return table if only is None else table.select(only)


class Workload:
    """The workload of one variant at one scale: call `night(n)` for n = 1, 2, …"""

    def __init__(self, scale: float = 1.0, seed: int = 42, nights: int = 30, variant: str = "mixed", column_every: int = 8):
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant '{variant}': one of {', '.join(VARIANTS)}")
        self.scale = scale
        self.nights = nights
        self.variant = variant
        self.column_every = column_every
        self.rng = np.random.default_rng(seed)
        self.master = self._master(max(50, round(MASTER_ROWS * scale)))
        sizes = np.geomspace(SMALLEST_SOURCE, LARGEST_SOURCE, SOURCE_TABLES)
        self.rng.shuffle(sizes)
        self.sources: list[Source] = []
        for i, size in enumerate(sizes):
            rows = max(20, round(size * scale / SOURCE_BYTES_PER_ROW))
            events = i < EVENT_TABLES
            name = f"events_{i + 1:02d}" if events else f"ref_{i + 1:02d}"
            self.sources.append(self._source(name, "event_id" if events else "record_id", rows, events))
        # The parcel every system is asked about: never deleted.
        self.probe = int(self.master.keys()[len(self.master.keys()) // 3])
        # The events table the join query reads: the largest.
        self.join_table = max((s for s in self.sources if s.name.startswith("events")), key=lambda s: s.rows).name
        self.next_event = {s.name: int(s.keys().max()) + 1 for s in self.sources}
        self._unchanged: dict[tuple[str, int], Change] = {}
        self._snapshots: dict[str, pa.Table] = {}  # last night's rendered rows, by table

    @property
    def tables(self) -> list[Table]:
        return [self.master, *self.sources]

    # -- generation -----------------------------------------------------------

    def _bbls(self, n: int, exclude: np.ndarray | None = None) -> np.ndarray:
        out = np.empty(0, np.int64)
        while len(out) < n:
            borough = self.rng.choice(5, size=2 * n, p=[0.05, 0.35, 0.3, 0.2, 0.1]) + 1
            block = self.rng.integers(1, 20_000, 2 * n)
            lot = self.rng.integers(1, 10_000, 2 * n)
            candidates = np.unique(borough.astype(np.int64) * 1_000_000_000 + block * 10_000 + lot)
            if exclude is not None:
                candidates = candidates[~np.isin(candidates, exclude)]
            out = np.unique(np.concatenate([out, candidates]))
        return self.rng.permutation(out)[:n]

    def _parcels(self, bbl: np.ndarray) -> dict[str, np.ndarray]:
        n, r = len(bbl), self.rng
        borough = (bbl // 1_000_000_000).astype(np.int8)
        lot_area = r.integers(800, 40_000, n).astype(np.int32)
        return {
            "bbl": bbl.astype(np.int64),
            "borough": borough,
            "block": ((bbl // 10_000) % 100_000).astype(np.int32),
            "lot": (bbl % 10_000).astype(np.int32),
            "house_no": r.integers(1, 3000, n).astype(np.int32),
            "street": r.integers(1, 2500, n).astype(np.int32),
            "zipcode": r.integers(10001, 11698, n).astype(np.int32),
            "owner": r.integers(1, 200_000, n).astype(np.int32),
            "bldg_class": r.integers(0, len(BUILDING_CLASSES), n).astype(np.int8),
            "land_use": r.integers(1, 12, n).astype(np.int8),
            "zoning": r.integers(0, len(ZONINGS), n).astype(np.int8),
            "lot_area": lot_area,
            "bldg_area": (lot_area * r.uniform(0.3, 6, n)).astype(np.int32),
            "floors_tenths": r.integers(10, 400, n).astype(np.int16),
            "units_res": r.integers(0, 120, n).astype(np.int32),
            "units_total": r.integers(1, 140, n).astype(np.int32),
            "year_built": r.integers(1850, 2026, n).astype(np.int16),
            "year_altered": r.integers(1950, 2026, n).astype(np.int16),
            "assessed_land_cents": r.integers(1_000_000, 500_000_000, n).astype(np.int64),
            "assessed_total_cents": r.integers(5_000_000, 5_000_000_000, n).astype(np.int64),
            "exempt_total_cents": r.integers(0, 100_000_000, n).astype(np.int64),
            "market_value_cents": r.integers(10_000_000, 9_000_000_000, n).astype(np.int64),
            "tax_class": r.integers(0, len(TAX_CLASSES), n).astype(np.int8),
            "latitude": np.round(40.5 + r.uniform(0, 0.4, n), 6),
            "longitude": np.round(-74.25 + r.uniform(0, 0.5, n), 6),
            "x_coord": r.integers(913_000, 1_067_000, n).astype(np.int32),
            "y_coord": r.integers(121_000, 271_000, n).astype(np.int32),
            "community_district": r.integers(1, 19, n).astype(np.int8),
            "council_district": r.integers(1, 52, n).astype(np.int8),
            "census_tract": r.integers(1, 200_000, n).astype(np.int32),
            "school_district": r.integers(1, 33, n).astype(np.int8),
            "police_precinct": r.integers(1, 124, n).astype(np.int8),
            "fire_company": r.integers(1, 350, n).astype(np.int16),
            "status": r.integers(0, len(STATUSES), n).astype(np.int8),
            "status_day": np.zeros(n, np.int16),
            "sale_day": r.integers(0, 9500, n).astype(np.int16),
            "sale_price_cents": r.integers(10_000_000, 5_000_000_000, n).astype(np.int64),
            "landmark": r.random(n) < 0.01,
            "flood_zone": r.integers(0, len(FLOOD_ZONES), n).astype(np.int8),
            "score_a_e4": r.integers(0, 1_000_000, n).astype(np.int64),
            "score_b_e4": r.integers(0, 1_000_000, n).astype(np.int64),
        }

    def _master(self, rows: int) -> Master:
        return Master("master", "bbl", self._parcels(np.sort(self._bbls(rows))))

    def _source_rows(self, ids: np.ndarray, day: int) -> dict[str, np.ndarray]:
        n, r = len(ids), self.rng
        parcels = self.master.keys()
        return {
            "id": ids.astype(np.int64),
            "bbl": parcels[r.integers(0, len(parcels), n)],
            "day": np.full(n, day, np.int16) if day >= 0 else r.integers(-3000, 0, n).astype(np.int16),
            "kind": r.integers(0, len(EVENT_KINDS), n).astype(np.int8),
            "amount_cents": r.integers(0, 10_000_000, n).astype(np.int64),
            "status": r.integers(0, len(STATUSES), n).astype(np.int8),
            "word_a": r.integers(0, 500, n).astype(np.int16),
            "word_b": r.integers(0, 5000, n).astype(np.int16),
            "value_e3": r.integers(0, 100_000_000, n).astype(np.int64),
        }

    def _source(self, name: str, key: str, rows: int, events: bool) -> Source:
        ids = np.arange(1, rows + 1, dtype=np.int64) if events else np.sort(self.rng.choice(rows * 20, rows, replace=False) + 1)
        columns = self._source_rows(ids, -1)
        columns[key] = columns.pop("id")
        return Source(name, key, columns)

    # -- nights ---------------------------------------------------------------

    def night(self, n: int) -> list[TableNight]:
        """The tables after night `n`'s refresh (n = 1 is the initial load);
        nights must be asked for in order."""
        if n == 1:
            out = [TableNight(t.name, t.key, t.render(), None, True) for t in self.tables]
        else:
            out = []
            for index, table in enumerate(self.tables):
                change, refreshed = self._refresh(table, index, n)
                # A table that neither refreshed nor changed has last night's rows.
                snapshot = table.render() if refreshed else self._snapshots[table.name]
                out.append(TableNight(table.name, table.key, snapshot, change, refreshed))
        self._snapshots = {t.name: t.snapshot for t in out}
        return out

    def _refresh(self, table: Table, index: int, n: int) -> tuple[Change, bool]:
        r = self.rng
        mixed = self.variant == "mixed"
        updates = self.variant in ("mixed", "sparse-updates")
        appends = self.variant in ("mixed", "appends")
        is_master = table is self.master
        is_events = table.name.startswith("events")
        # Reference tables refresh once a week (a seventh of them each night);
        # the master and the time-ordered tables every night.
        refreshed = is_master or is_events or (index + n) % 7 == 0
        if not refreshed:
            # Nothing changes (and no random number is drawn): the empty
            # change of this table's columns, rendered once.
            shape = (table.name, len(table.added))
            if shape not in self._unchanged:
                nothing = table.take(slice(0, 0))
                self._unchanged[shape] = Change(pa.array([], pa.int64()), table.render(nothing, only=[table.key]), table.render(nothing), [])
            return self._unchanged[shape], False
        keys_before = table.keys().copy()
        changed_columns: set[str] = set()
        changed = np.zeros(table.rows, bool)
        if refreshed and updates:
            # A status change for ~0.5% of the rows.
            hit = r.random(table.rows) < 0.005
            if is_master:
                hit &= table.keys() != self.probe
            table.columns["status"][hit] = (table.columns["status"][hit] + r.integers(1, len(STATUSES), hit.sum())) % len(STATUSES)
            changed_columns.add("status")
            if is_master:
                table.columns["status_day"][hit] = n
                changed_columns.add("status_date")
            changed |= hit
        if is_master and mixed:
            # Both scores recomputed for every parcel.
            table.columns["score_a_e4"] = r.integers(0, 1_000_000, table.rows).astype(np.int64)
            table.columns["score_b_e4"] = r.integers(0, 1_000_000, table.rows).astype(np.int64)
            changed_columns |= {"score_a", "score_b"}
            changed[:] = True
        deleted_mask = np.zeros(table.rows, bool)
        if refreshed and mixed:
            # ~0.1% of the rows deleted (never the probed parcel).
            deleted_mask = r.random(table.rows) < 0.001
            if is_master:
                deleted_mask &= table.keys() != self.probe
        inserted: dict[str, np.ndarray] | None = None
        if appends and (is_events or is_master):
            if is_events:
                count = max(1, round(table.rows * 0.005))
                ids = np.arange(self.next_event[table.name], self.next_event[table.name] + count, dtype=np.int64)
                self.next_event[table.name] += count
                inserted = self._source_rows(ids, n)
                inserted[table.key] = inserted.pop("id")
            else:
                # A few new parcels (lots split off), keys anywhere in the range.
                count = max(1, round(table.rows * 0.0005))
                new = self._parcels(self._bbls(count, exclude=table.keys()))
                new["status_day"][:] = n
                inserted = new
        added: list[tuple[str, str]] = []
        if mixed and n % self.column_every == 0 and n != self.nights and (is_master or index == 1):
            # A column added now and then (never on the last night, so the
            # last night's diff compares like with like).
            name = f"extra_{n:02d}"
            table.columns[name] = extra_values(table.keys(), n)
            table.added.append((name, "INTEGER"))
            added.append((name, "INTEGER"))
            changed_columns.add(name)
            changed[:] = True
        # Build the change: deletes, then updates of surviving rows, then inserts.
        deleted_keys = keys_before[deleted_mask]
        update_mask = changed & ~deleted_mask
        updated = table.render(table.take(update_mask), only=[table.key, *sorted(changed_columns)])
        table.delete(deleted_mask)
        if inserted is not None:
            for name, _ in table.added:
                if name not in inserted:
                    inserted[name] = extra_values(inserted[table.key], int(name.removeprefix("extra_")))
            table.append(inserted)
            inserted_table = table.render(inserted)
        else:
            inserted_table = table.render(table.take(slice(0, 0)))
        change = Change(pa.array(deleted_keys, pa.int64()), updated, inserted_table, added)
        return change, refreshed or not change.empty
