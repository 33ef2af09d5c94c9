import DuckDB
import Foundation

/// The rows that differ between two versions of a table, found without
/// reading what both share.
///
/// - Segments present in both versions hold the same rows: skipped.
/// - A segment of each side whose key column chunks are the same blobs
///   holds the same keys in the same order (a "pair"); only the columns
///   whose chunks differ are read, and compared row by row by position.
///   Rows deleted on one side only are read whole, by position.
/// - The other segments of each side are read whole and compared as sets
///   of rows (multisets for a keyless table).
///
/// ``build(old:new:key:prefix:complete:)`` leaves `<prefix>_old` and
/// `<prefix>_new` in the connection: the old and the new image of every
/// changed row, in ``Shape/columns``. For a keyed table a key in both is an
/// update, in `_new` only an insert, in `_old` only a delete. Unless
/// `complete`, an update found in a pair carries only the key and the
/// columns that were read; the others are NULL on both sides (equal).
struct TableDiff {
    let connection: Connection
    /// The path of a segment's materialized file.
    let materialize: (SegmentRef) throws(UDRError) -> String
    /// A segment's recipe (which blobs hold which column).
    let recipe: @Sendable (SegmentRef) throws(UDRError) -> SegmentRecipe
    /// The segment's own file, deleted rows included.
    let file: (SegmentRef) throws(UDRError) -> String
    /// The positions of a segment's deleted rows.
    let deleted: (SegmentRef) throws(UDRError) -> Set<Int64>
    /// The path of a file holding a stored object (a change record's).
    let object: (ObjectID) throws(UDRError) -> String
    /// A stored table version.
    let manifest: (ObjectID) throws(UDRError) -> Manifest

    struct Shape {
        let prefix: String
        /// The columns compared: the old version's, then those only the new one has.
        let columns: [Column]
        /// The key rows are matched by; nil compares whole rows as multisets.
        let key: [String]?
        /// Segments read whole, and pairs read column by column.
        var segmentsRead = 0
        var pairsRead = 0
        var segmentsSkipped = 0
        /// Read from the new version's change record (and the segments it names).
        var recorded = false
        /// With `recordPairs`: the segments of each side that were not
        /// paired, read whole (see ``build(old:new:key:prefix:complete:countsOnly:recordPairs:)``).
        var unpairedOld: [SegmentRef] = []
        var unpairedNew: [SegmentRef] = []

        var old: String { "\(prefix)_old" }
        var new: String { "\(prefix)_new" }
        /// With `recordPairs`: the rows the pairs contributed to each side.
        var pairedOld: String { "\(prefix)_pold" }
        var pairedNew: String { "\(prefix)_pnew" }
        /// The pairs alone gave more than the build's `limit` of row images: it stopped there.
        var overLimit = false
        /// `countsOnly`: updates the pairs found, counted and not kept in
        /// the tables (a pair's differing row is an update: its key is
        /// nowhere else on either side).
        var pairUpdates: Int64 = 0
    }

    /// The columns both sides are compared on: `old`'s, then those only `new` has.
    static func columns(_ old: Manifest?, _ new: Manifest?) -> [Column] {
        var columns = old?.columns ?? []
        let known = Set(columns.map(\.name))
        columns += (new?.columns ?? []).filter { !known.contains($0.name) }
        return columns
    }

    /// The key both sides share, or nil (compare as multisets).
    static func key(_ old: Manifest?, _ new: Manifest?) -> [String]? {
        guard let old, let new else { return (old ?? new)?.key.nilIfEmpty }
        return old.key == new.key ? old.key.nilIfEmpty : nil
    }

    /// The changed rows of `old` (stored as `oldID`) → `new`, as
    /// ``build(old:new:key:prefix:complete:countsOnly:recordPairs:limit:)``
    /// leaves them: from change records when every version after `old` up
    /// to `new` recorded its own (``recorded(old:oldID:new:prefix:)``),
    /// else from segments. `key` (other key columns) reads segments.
    func changes(
        old: Manifest?, oldID: ObjectID?, new: Manifest?, key: [String]? = nil, prefix: String, complete: Bool, countsOnly: Bool = false
    ) throws(UDRError) -> Shape {
        if key == nil, let old, let oldID, let new, let shape = try recorded(old: old, oldID: oldID, new: new, prefix: prefix) {
            return shape
        }
        return try build(old: old, new: new, key: key, prefix: prefix, complete: complete, countsOnly: countsOnly)
    }

    /// The change records from `old` (stored as `oldID`) to `new`: `new`'s,
    /// and back through each record's base until `old`, oldest first, each
    /// with the version it starts from. nil when a version on the way has
    /// none, or its key or columns differ from `new`'s (`old` may lack
    /// columns `new` has) or is gone (expired), or several records hold
    /// more row images and rows to read whole than a fifth of the table's
    /// rows, or `old` is not reached
    /// within ``maximumChain`` versions.
    func recordChain(old: Manifest, oldID: ObjectID, new: Manifest) throws(UDRError) -> [(from: Manifest, to: Manifest, record: ChangeRecord)]? {
        guard old.key == new.key, Set(old.columns).isSubset(of: Set(new.columns)) else { return nil }
        var chain: [(from: Manifest, to: Manifest, record: ChangeRecord)] = []
        var current = new
        var rows: Int64 = 0
        // Table versions are numbered in the order they were written.
        while chain.count < Self.maximumChain, current.version > old.version {
            guard let base = current.changes?.base, let record = current.changes(from: base) else { return nil }
            let previous: Manifest
            if base == oldID {
                previous = old
            } else {
                // A version expired and collected on the way: its segments tell.
                do { previous = try manifest(base) } catch { return nil }
                guard previous.key == new.key, previous.columns == new.columns else { return nil }
            }
            let named = Set((record.oldSegments ?? []) + (record.newSegments ?? []))
            rows += record.rows.inserted + record.rows.deleted + 2 * record.rows.updated
            rows += (previous.segments + current.segments).filter { named.contains($0.id) }.reduce(0) { $0 + $1.rows }
            // (One version's record is small enough: it was kept.)
            guard chain.isEmpty || rows <= max(new.rows, old.rows) / 5 else { return nil }
            chain.append((previous, current, record))
            if base == oldID { return chain.reversed() }
            current = previous
        }
        return nil
    }

    /// Versions a diff follows change records across before it reads segments instead.
    static let maximumChain = 64

    /// The changed rows of `old` (stored as `oldID`) → `new` from change
    /// records (see ``recordChain(old:oldID:new:)``), whole rows. Each
    /// record gives its version's changed rows: its own rows, compared by
    /// key with the rows of the segments it names. Across several versions
    /// a key's old image is the one of the first version that changed it,
    /// its new image that of the last; keys whose two images are the same
    /// row (changed back) drop out. nil without such records.
    func recorded(old: Manifest, oldID: ObjectID, new: Manifest, prefix: String) throws(UDRError) -> Shape? {
        guard let chain = try recordChain(old: old, oldID: oldID, new: new) else { return nil }
        let columns = Self.columns(old, new)
        if chain.count == 1 { return try recordedStep(chain[0].from, chain[0].to, chain[0].record, prefix: prefix) }
        var shape = Shape(prefix: prefix, columns: columns, key: new.key)
        shape.recorded = true
        var steps: [Shape] = []
        defer {
            for step in steps { for table in [step.old, step.new] { try? connection.execute("DROP TABLE IF EXISTS \(table)") } }
            try? connection.execute("DROP TABLE IF EXISTS \(prefix)_steps")
        }
        var oldRead = Set<ObjectID>()
        for (index, (from, to, record)) in chain.enumerated() {
            guard let step = try recordedStep(from, to, record, prefix: "\(prefix)_s\(index)") else { return nil }
            steps.append(step)
            shape.segmentsRead += step.segmentsRead
            oldRead.formUnion(record.oldSegments ?? [])
        }
        shape.segmentsSkipped = old.segments.filter { !oldRead.contains($0.id) }.count
        let net = Self.netChange(steps.map { ($0.old, $0.new) }, columns: columns, key: new.key, into: "\(prefix)_steps")
        try run(net.steps)
        try run("CREATE TABLE \(shape.old) AS \(net.old)")
        try run("CREATE TABLE \(shape.new) AS \(net.new)")
        return shape
    }

    /// The net change of successive changes of a keyed table, each given
    /// as a relation of old images and one of new images (oldest first,
    /// in `columns`): a key's old image is the one of the first change
    /// that touched it, its new image that of the last; keys whose two
    /// images are the same row drop out. `steps` creates the table `into`
    /// that `old` and `new` (the net images) select from.
    static func netChange(_ changes: [(old: String, new: String)], columns: [Column], key: [String], into table: String, temporary: Bool = false)
        -> (steps: String, old: String, new: String)
    {
        let names = columns.map { quoteIdentifier($0.name) }
        let list = names.joined(separator: ", ")
        let keys = key.map(quoteIdentifier).joined(separator: ", ")
        let rows = changes.enumerated().flatMap { index, change in
            ["SELECT \(index) AS __i, false AS __new, \(list) FROM \(change.old)", "SELECT \(index), true, \(list) FROM \(change.new)"]
        }
        let steps = """
            CREATE \(temporary ? "TEMP " : "")TABLE \(table) AS
            SELECT *, min(__i) OVER (PARTITION BY \(keys)) AS __first, max(__i) OVER (PARTITION BY \(keys)) AS __last
            FROM (\(rows.joined(separator: " UNION ALL ")))
            """
        let first = "SELECT \(list) FROM \(table) WHERE NOT __new AND __i = __first"
        let last = "SELECT \(list) FROM \(table) WHERE __new AND __i = __last"
        let same = "\(match(key, "a", "b")) AND row(\(names.map { "a.\($0)" }.joined(separator: ", "))) IS NOT DISTINCT FROM row(\(names.map { "b.\($0)" }.joined(separator: ", ")))"
        return (
            steps,
            "SELECT * FROM (\(first)) a WHERE NOT EXISTS (SELECT 1 FROM (\(last)) b WHERE \(same))",
            "SELECT * FROM (\(last)) b WHERE NOT EXISTS (SELECT 1 FROM (\(first)) a WHERE \(same))"
        )
    }

    /// One version's changed rows from its change record: the record's
    /// rows, compared by key with the rows of the segments it names.
    private func recordedStep(_ old: Manifest, _ new: Manifest, _ record: ChangeRecord, prefix: String) throws(UDRError) -> Shape? {
        let oldNamed = Set(record.oldSegments ?? [])
        let newNamed = Set(record.newSegments ?? [])
        let oldOnly = old.segments.filter { oldNamed.contains($0.id) }
        let newOnly = new.segments.filter { newNamed.contains($0.id) }
        guard oldOnly.count == oldNamed.count, newOnly.count == newNamed.count else { return nil }
        let columns = Self.columns(old, new)
        var shape = Shape(prefix: prefix, columns: columns, key: new.key)
        shape.recorded = true
        shape.segmentsRead = oldOnly.count + newOnly.count
        shape.segmentsSkipped = old.segments.count - oldOnly.count
        let rows = ChangeRecords.read(try object(record.object), columns: columns, held: new.columns)
        guard !oldOnly.isEmpty || !newOnly.isEmpty else {
            // A row edit's record: its rows are the changed rows.
            try run("CREATE TABLE \(shape.old) AS SELECT * EXCLUDE (__udr_new) FROM (\(rows)) WHERE NOT __udr_new")
            try run("CREATE TABLE \(shape.new) AS SELECT * EXCLUDE (__udr_new) FROM (\(rows)) WHERE __udr_new")
            return shape
        }
        try createTables(shape)
        defer { dropViews(prefix) }
        try load(new, segments: newOnly, columns: columns, into: "\(prefix)_un", adding: ["SELECT * EXCLUDE (__udr_new) FROM (\(rows)) WHERE __udr_new"])
        try load(old, segments: oldOnly, columns: columns, into: "\(prefix)_uo", adding: ["SELECT * EXCLUDE (__udr_new) FROM (\(rows)) WHERE NOT __udr_new"])
        try compareLoaded(shape, key: new.key)
        return shape
    }

    /// Builds the changed rows of `old` → `new`. `key` overrides the tables'
    /// own key: rows are then matched by it, every segment is read, and it
    /// must be unique on both sides.
    ///
    /// `countsOnly` (a summary): a row deleted from a file the other side
    /// keeps is read by its key alone, unless its key is among the rows
    /// read whole on the other side (it moved); the whole row of such a
    /// file is a full decode of the file.
    ///
    /// `recordPairs` (with `complete`) also leaves the rows the pairs gave
    /// each side in ``Shape/pairedOld`` and ``Shape/pairedNew``, and the
    /// segments read whole in ``Shape/unpairedOld`` and ``Shape/unpairedNew``:
    /// a change record of a whole-table write (see ``ChangeRecord``). With
    /// `limit`, the build stops (``Shape/overLimit``) when the segments to
    /// read whole hold more than `wholeRows` rows, or once the pairs give
    /// more than `images` row images, having compared no more rows than
    /// it takes to tell.
    func build(
        old: Manifest?, new: Manifest?, key requested: [String]? = nil, prefix: String, complete: Bool, countsOnly: Bool = false,
        recordPairs: Bool = false, limit: (images: Int64, wholeRows: Int64)? = nil
    ) throws(UDRError) -> Shape {
        assert(!recordPairs || (complete && !countsOnly), "a record holds whole rows")
        var clock = StepClock()
        let columns = Self.columns(old, new)
        let declared = Self.key(old, new)
        let key = requested ?? declared
        var shape = Shape(prefix: prefix, columns: columns, key: key)
        if let key {
            let names = Set(columns.map(\.name))
            for k in key where !names.contains(k) {
                throw UDRError(
                    .invalidArgument, "the key column '\(k)' is not in \((new ?? old)?.table.rawValue ?? "the table"); its columns are \(columns.map(\.name).joined(separator: ", "))")
            }
        }
        try createTables(shape)

        let oldSegments = old?.segments ?? []
        let newSegments = new?.segments ?? []
        var oldOnly = oldSegments
        var newOnly = newSegments
        if requested == nil || requested == declared {
            // Shared segments (the same file less the same deleted rows)
            // hold the same rows on both sides.
            let oldContent = Set(oldSegments.map(\.content))
            let newContent = Set(newSegments.map(\.content))
            oldOnly = oldSegments.filter { !newContent.contains($0.content) }
            newOnly = newSegments.filter { !oldContent.contains($0.content) }
            shape.segmentsSkipped = oldSegments.count - oldOnly.count
        }
        var pairs: [(SegmentRef, SegmentRef, changed: [String])] = []
        if let old, let new, let key, key == declared {
            (pairs, oldOnly, newOnly) = try pair(old: old, new: new, oldOnly: oldOnly, newOnly: newOnly, key: key)
        }
        shape.pairsRead = pairs.count
        shape.segmentsRead = oldOnly.count + newOnly.count
        clock.step("pair segments")
        if let limit, (oldOnly + newOnly).reduce(0, { $0 + $1.rows }) > limit.wholeRows {
            shape.overLimit = true
            return shape
        }
        // A pair's rows deleted on one side only: a delete (its row read from
        // the old file), or a row back (from the new one).
        var gone: [(SegmentRef, Set<Int64>)] = []
        var back: [(SegmentRef, Set<Int64>)] = []
        var deadInPairs: [ObjectID: Set<Int64>] = [:]
        for (o, n, _) in pairs where o.deletions != nil || n.deletions != nil {
            let before = try deleted(o)
            let after = try deleted(n)
            gone.append((o, after.subtracting(before)))
            back.append((n, before.subtracting(after)))
            deadInPairs[o.id] = before.union(after)
        }

        // Pairs, grouped by the columns that changed.
        func compare(_ pairs: [Pair], into shape: inout Shape, complete: Bool, limit: Int64?)
            throws(UDRError)
        {
            var groups: [[String]: [(SegmentRef, SegmentRef)]] = [:]
            for (o, n, changed) in pairs { groups[changed, default: []].append((o, n)) }
            for (changed, members) in groups.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                shape.pairUpdates += try comparePairs(
                    members, changed: changed, old: old!, new: new!, shape: shape, complete: complete, countOnly: countsOnly && key != nil,
                    dead: deadInPairs, limit: limit)
            }
        }
        if let limit, pairs.count >= 8, try probablyOver(limit.images, pairs: pairs, prefix: prefix, columns: columns, key: key, compare: compare) {
            shape.overLimit = true
            return shape
        }
        try compare(pairs, into: &shape, complete: complete, limit: limit?.images)
        clock.step("compare pairs")
        if let limit {
            let gone = gone.reduce(0) { $0 + $1.1.count } + back.reduce(0) { $0 + $1.1.count }
            let images = try query("SELECT (SELECT count(*) FROM \(shape.old)) + (SELECT count(*) FROM \(shape.new))").scalar.int ?? 0
            if images + Int64(gone) > limit.images {
                shape.overLimit = true
                return shape
            }
        }

        // The rest: whole rows, read where they lie (views over the files).
        defer {
            dropViews(prefix)
            for table in ["back", "gone", "moved"] { try? connection.execute("DROP TABLE IF EXISTS \(prefix)_\(table)") }
        }
        var newRows: [String] = []
        if let new, let rows = try loadRows(back, of: new, columns: columns, into: "\(prefix)_back") { newRows.append(rows) }
        try load(new, segments: newOnly, columns: columns, into: "\(prefix)_un", adding: newRows)
        var oldRows: [String] = []
        if let old { oldRows = try goneRows(gone, of: old, byKey: countsOnly ? key : nil, columns: columns, prefix: prefix) }
        try load(old, segments: oldOnly, columns: columns, into: "\(prefix)_uo", adding: oldRows)
        clock.step("load the other rows")
        if recordPairs {
            try run("CREATE TABLE \(shape.pairedOld) AS \((["SELECT * FROM \(shape.old)"] + oldRows).joined(separator: " UNION ALL "))")
            try run("CREATE TABLE \(shape.pairedNew) AS \((["SELECT * FROM \(shape.new)"] + newRows).joined(separator: " UNION ALL "))")
            shape.unpairedOld = oldOnly
            shape.unpairedNew = newOnly
        }
        if let requested, requested != declared {
            try checkUnique(requested, in: "\(prefix)_uo", side: "the old version")
            try checkUnique(requested, in: "\(prefix)_un", side: "the new version")
        }
        try compareLoaded(shape, key: key == declared ? key : nil, multiset: key == nil)
        return shape
    }

    /// Whether the changed rows of `pairs` would give more than `limit`
    /// row images, judged from eight to fifteen of them spread over the
    /// table (their key and changed columns alone): a change of every row
    /// stops after reading a little of it. A change crowded into the pairs
    /// sampled may be judged over when it is not (it is then not recorded).
    private func probablyOver(
        _ limit: Int64, pairs: [Pair], prefix: String, columns: [Column], key: [String]?,
        compare: (_ pairs: [Pair], _ into: inout Shape, _ complete: Bool, _ limit: Int64?) throws(UDRError) -> Void
    ) throws(UDRError) -> Bool {
        let sample = stride(from: 0, to: pairs.count, by: pairs.count / 8).map { pairs[$0] }
        var probe = Shape(prefix: "\(prefix)_probe", columns: columns, key: key)
        defer { for table in [probe.old, probe.new] { try? connection.execute("DROP TABLE IF EXISTS \(table)") } }
        try createTables(probe)
        try compare(sample, &probe, false, nil)
        let found = try query("SELECT count(*) FROM \(probe.new)").scalar.int ?? 0
        let sampled = sample.reduce(Int64(0)) { $0 + $1.1.fileRows }
        let all = pairs.reduce(Int64(0)) { $0 + $1.1.fileRows }
        return sampled > 0 && 2 * found * all / sampled > limit
    }

    /// Two segments holding the same keys in the same order, and the columns whose chunks differ.
    typealias Pair = (SegmentRef, SegmentRef, changed: [String])

    /// The shape's two tables, empty, in its columns.
    private func createTables(_ shape: Shape) throws(UDRError) {
        try run("CREATE TABLE \(shape.old) AS SELECT \(typedNulls(shape.columns)) WHERE false")
        try run("CREATE TABLE \(shape.new) AS SELECT \(typedNulls(shape.columns)) WHERE false")
    }

    private func dropViews(_ prefix: String) {
        try? connection.execute("DROP VIEW IF EXISTS \(prefix)_uo")
        try? connection.execute("DROP VIEW IF EXISTS \(prefix)_un")
    }

    /// Adds to the shape's tables the rows of `<prefix>_uo` and
    /// `<prefix>_un` (the rows read whole) that differ: by `key`, or as
    /// sets (multisets when `multiset`) without one.
    private func compareLoaded(_ shape: Shape, key: [String]?, multiset: Bool = false) throws(UDRError) {
        let prefix = shape.prefix
        guard let key else {
            // Multisets (or a key of the caller's, unique as checked): set differences.
            let except = multiset ? "EXCEPT ALL" : "EXCEPT"
            try run("INSERT INTO \(shape.old) SELECT * FROM \(prefix)_uo \(except) SELECT * FROM \(prefix)_un")
            try run("INSERT INTO \(shape.new) SELECT * FROM \(prefix)_un \(except) SELECT * FROM \(prefix)_uo")
            return
        }
        // Keyed: one outer join on the key, keeping rows on one side only or differing.
        let names = shape.columns.map { quoteIdentifier($0.name) }
        let oRow = "row(\(names.map { "o.\($0)" }.joined(separator: ", ")))"
        let nRow = "row(\(names.map { "n.\($0)" }.joined(separator: ", ")))"
        let k0 = quoteIdentifier(key[0])
        let joined = "\(prefix)_joined"
        try run(
            """
            CREATE TABLE \(joined) AS SELECT \(names.enumerated().map { "o.\($1) AS __o\($0)" }.joined(separator: ", ")), o.\(k0) IS NOT NULL AS __o_has,
                   \(names.enumerated().map { "n.\($1) AS __n\($0)" }.joined(separator: ", ")), n.\(k0) IS NOT NULL AS __n_has
            FROM \(prefix)_uo o FULL OUTER JOIN \(prefix)_un n ON \(key.map { "o.\(quoteIdentifier($0)) = n.\(quoteIdentifier($0))" }.joined(separator: " AND "))
            WHERE o.\(k0) IS NULL OR n.\(k0) IS NULL OR \(oRow) IS DISTINCT FROM \(nRow)
            """)
        defer { try? connection.execute("DROP TABLE IF EXISTS \(joined)") }
        try run("INSERT INTO \(shape.old) SELECT \(names.indices.map { "__o\($0)" }.joined(separator: ", ")) FROM \(joined) WHERE __o_has")
        try run("INSERT INTO \(shape.new) SELECT \(names.indices.map { "__n\($0)" }.joined(separator: ", ")) FROM \(joined) WHERE __n_has")
    }

    /// Matches each segment only `new` has with one only `old` has whose key
    /// chunks are the same blobs, and names the columns whose chunks differ.
    private func pair(old: Manifest, new: Manifest, oldOnly: [SegmentRef], newOnly: [SegmentRef], key: [String]) throws(UDRError) -> (
        [(SegmentRef, SegmentRef, changed: [String])], [SegmentRef], [SegmentRef]
    ) {
        // Cheap first: the same row count and key range (from the manifests).
        func signature(_ s: SegmentRef) -> String {
            "\(s.fileRows)|" + key.map { "\(s.stats[$0]?.min ?? "")|\(s.stats[$0]?.max ?? "")" }.joined(separator: "|")
        }
        let oldTypes = Dictionary(old.columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        let newTypes = Dictionary(new.columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        var candidates: [String: [SegmentRef]] = [:]
        for segment in oldOnly { candidates[signature(segment), default: []].append(segment) }
        var recipes = ColumnBlobs(recipe: recipe)
        let matched = newOnly.filter { candidates[signature($0)] != nil }
        try recipes.prefetch(matched + Set(matched.map(signature)).flatMap { candidates[$0] ?? [] })
        var pairs: [(SegmentRef, SegmentRef, changed: [String])] = []
        var pairedOld = Set<ObjectID>()
        var pairedNew = Set<ObjectID>()
        for segment in newOnly {
            guard let olds = candidates[signature(segment)] else { continue }
            let names = new.columnNames(of: segment)
            guard let newBlobs = try recipes.of(segment) else { continue }
            for candidate in olds where !pairedOld.contains(candidate.id) && old.columnNames(of: candidate) == names {
                guard let oldBlobs = try recipes.of(candidate),
                    let changed = Self.changedColumns(names: names, key: key, old: oldBlobs, new: newBlobs, oldTypes: oldTypes, newTypes: newTypes)
                else { continue }
                pairs.append((candidate, segment, changed))
                pairedOld.insert(candidate.id)
                pairedNew.insert(segment.id)
                break
            }
        }
        return (pairs, oldOnly.filter { !pairedOld.contains($0.id) }, newOnly.filter { !pairedNew.contains($0.id) })
    }

    /// The columns whose chunks differ between two segments with the same
    /// column `names`; nil unless their key chunks are the same blobs (the
    /// same keys in the same order), so that rows pair up by position.
    static func changedColumns(
        names: [String], key: [String], old: [Int: [ObjectID]], new: [Int: [ObjectID]], oldTypes: [String: String],
        newTypes: [String: String]
    ) -> [String]? {
        for column in key {
            guard let position = names.firstIndex(of: column), let blobs = new[position], old[position] == blobs else { return nil }
        }
        return names.enumerated().filter { position, name in
            old[position] == nil || old[position] != new[position] || oldTypes[name] != newTypes[name]
        }.map(\.element)
    }

    /// Compares paired segments by position in their own files, reading
    /// only the changed columns of the old side, and the key and changed
    /// columns (every column when `complete`) of the new side. `dead`
    /// lists old segments' positions deleted on either side: skipped. A
    /// positional scan runs on one thread: the pairs are split between
    /// connections, one per core. Each stops after `limit` + 1 differing rows.
    /// `countOnly` counts the differing rows instead (returned; 0 otherwise).
    private func comparePairs(
        _ members: [(SegmentRef, SegmentRef)], changed: [String], old: Manifest, new: Manifest, shape: Shape, complete: Bool,
        countOnly: Bool, dead: [ObjectID: Set<Int64>], limit: Int64?
    ) throws(UDRError) -> Int64 {
        guard !changed.isEmpty else { return 0 }
        let key = shape.key ?? []
        let newTypes = Dictionary(new.columns.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let oldTypes = Dictionary(old.columns.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newNames = complete ? new.columns.map(\.name) : key + changed.filter { !key.contains($0) }
        let oldColumns = changed.compactMap { oldTypes[$0] }
        let newColumns = newNames.compactMap { newTypes[$0] }
        let newIndex = Dictionary(newColumns.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        let differs = oldColumns.enumerated().compactMap { i, column in
            newIndex[column.name].map { "__o\(i) IS DISTINCT FROM __n\($0)" }
        }
        guard !differs.isEmpty else { return 0 }
        func side(_ manifest: Manifest, _ columns: [Column], _ segments: [SegmentRef], extra: [String]) throws(UDRError) -> String {
            var files: [String] = []
            for segment in segments { files.append(try file(segment)) }
            let whole = segments.map { segment -> SegmentRef in
                var copy = segment
                copy.deletions = nil
                return copy
            }
            let subset = Manifest(table: manifest.table, version: manifest.version, columns: columns, key: manifest.key, segments: whole)
            return Repository.segmentSelect(subset, segments: whole, files: files, extra: extra)
        }
        let o = oldColumns.enumerated().map { "\(quoteIdentifier($1.name)) AS __o\($0)" }.joined(separator: ", ")
        let n = newColumns.enumerated().map { "\(quoteIdentifier($1.name)) AS __n\($0)" }.joined(separator: ", ")

        // Each share of the pairs: the statements that leave its differing
        // rows in a table of its own.
        let shares = max(1, min(ProcessInfo.processInfo.activeProcessorCount, members.count / 8))
        var statements: [String] = []
        var tables: [String] = []
        for share in 0..<shares {
            let part = Array(members[(members.count * share / shares)..<(members.count * (share + 1) / shares)])
            let positions = part.contains { dead[$0.0.id] != nil }
            let table = "\(shape.prefix)_pairs\(share)"
            let deadTable = "\(shape.prefix)_dead\(share)"
            var live = ""
            if positions {
                var deadRows: [String] = []
                for (o, _) in part {
                    let path = try file(o)
                    deadRows += (dead[o.id] ?? []).map { "(\(quoteLiteral(path)), \($0))" }
                }
                try createTable(deadTable, columns: "file VARCHAR, pos BIGINT", rows: deadRows, on: connection)
                live = " AND NOT EXISTS (SELECT 1 FROM \(deadTable) d WHERE d.file = __o_file AND d.pos = __o_pos)"
            }
            let oldSelect = try side(old, oldColumns, part.map(\.0), extra: positions ? ["filename", "file_row_number"] : [])
            let newSelect = try side(new, newColumns, part.map(\.1), extra: [])
            let oldExtra = positions ? ", filename AS __o_file, file_row_number AS __o_pos" : ""
            let differing =
                "FROM (SELECT \(o)\(oldExtra) FROM (\(oldSelect))) POSITIONAL JOIN (SELECT \(n) FROM (\(newSelect))) WHERE (\(differs.joined(separator: " OR ")))\(live)"
            statements.append(
                countOnly
                    ? "CREATE TABLE \(table) AS SELECT count(*) AS n \(differing)"
                    : "CREATE TABLE \(table) AS SELECT *\(positions ? " EXCLUDE (__o_file, __o_pos)" : "") \(differing)\(limit.map { " LIMIT \($0 + 1)" } ?? "")"
            )
            tables.append(table)
        }
        defer {
            for share in 0..<shares {
                try? connection.execute("DROP TABLE IF EXISTS \(shape.prefix)_pairs\(share)")
                try? connection.execute("DROP TABLE IF EXISTS \(shape.prefix)_dead\(share)")
            }
        }
        let (database, work) = (connection.database, statements)
        let failures = FailureBox()
        DispatchQueue.concurrentPerform(iterations: work.count) { share in
            do throws(DuckDBError) {
                try database.connect().execute(work[share])
            } catch {
                failures.record(UDRError(.query, error.message, underlying: error))
            }
        }
        if let error = failures.first { throw error }
        let all = tables.map { "SELECT * FROM \($0)" }.joined(separator: " UNION ALL ")
        if countOnly { return try query("SELECT sum(n)::BIGINT FROM (\(all))").scalar.int ?? 0 }

        let oldIndex = Dictionary(oldColumns.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        let newList = newColumns.enumerated().map { "__n\($0) AS \(quoteIdentifier($1.name))" }.joined(separator: ", ")
        let oldList = newColumns.enumerated().map { i, column in
            "\(oldIndex[column.name].map { "__o\($0)" } ?? "__n\(i)") AS \(quoteIdentifier(column.name))"
        }.joined(separator: ", ")
        try run("INSERT INTO \(shape.old) BY NAME SELECT \(oldList) FROM (\(all))")
        try run("INSERT INTO \(shape.new) BY NAME SELECT \(newList) FROM (\(all))")
        return 0
    }

    /// Loads the rows at the given positions of segments' own files into
    /// `table`, as `read` (with `file_row_number` and the segment's id in
    /// `__seg`), in one scan of the files: a few rows of a file cost a
    /// decode of the whole file either way. Returns a SELECT of them as
    /// `read`; nil for no rows.
    private func loadRows(_ rows: [(SegmentRef, Set<Int64>)], of manifest: Manifest, columns read: [Column], into table: String)
        throws(UDRError) -> String?
    {
        let rows = rows.filter { !$0.1.isEmpty }
        guard !rows.isEmpty else { return nil }
        var files: [String] = []
        var wanted: [String] = []
        for (segment, positions) in rows {
            let path = try file(segment)
            files.append(path)
            wanted += positions.map { "(\(quoteLiteral(path)), \($0), \(quoteLiteral(segment.id.hex)))" }
        }
        let wholes = rows.map { manifest.wholeFile($0.0) }
        let shape = Manifest(table: manifest.table, version: manifest.version, columns: read, key: manifest.key, segments: wholes)
        let select = Repository.segmentSelect(shape, segments: wholes, files: files, extra: ["filename", "file_row_number"])
        let positions = "\(table)_positions"
        try createTable(positions, columns: "file VARCHAR, pos BIGINT, seg VARCHAR", rows: wanted, on: connection)
        defer { try? connection.execute("DROP TABLE IF EXISTS \(positions)") }
        try run(
            """
            CREATE TABLE \(table) AS SELECT p.* EXCLUDE (filename), w.seg AS __seg FROM (\(select)) p
            JOIN \(positions) w ON p.filename = w.file AND p.file_row_number = w.pos
            """)
        return "SELECT \(read.map { quoteIdentifier($0.name) }.joined(separator: ", ")) FROM \(table)"
    }

    /// The old rows deleted at the given positions, as queries for `_uo`
    /// (after `_un` exists). `byKey` reads only the key (the other columns
    /// NULL), except for rows whose key `_un` holds, read whole to be
    /// compared.
    private func goneRows(_ gone: [(SegmentRef, Set<Int64>)], of manifest: Manifest, byKey key: [String]?, columns: [Column], prefix: String)
        throws(UDRError) -> [String]
    {
        guard let key else { return try loadRows(gone, of: manifest, columns: columns, into: "\(prefix)_gone").map { [$0] } ?? [] }
        let keyColumns = key.compactMap { k in columns.first { $0.name == k } }
        let table = "\(prefix)_gone"
        guard try loadRows(gone, of: manifest, columns: keyColumns, into: table) != nil else { return [] }
        let moved = "EXISTS (SELECT 1 FROM \(prefix)_un n WHERE \(Self.match(key, "d", "n")))"
        let keyOnly = columns.map { column in
            key.contains(column.name)
                ? "d.\(quoteIdentifier(column.name))" : "CAST(NULL AS \(column.type)) AS \(quoteIdentifier(column.name))"
        }
        var out = ["SELECT \(keyOnly.joined(separator: ", ")) FROM \(table) d WHERE NOT \(moved)"]
        var movedRows: [String: Set<Int64>] = [:]
        for row in try query("SELECT __seg, file_row_number FROM \(table) d WHERE \(moved)").rows {
            if let seg = row[0].string, let position = row[1].int { movedRows[seg, default: []].insert(position) }
        }
        let whole = gone.compactMap { segment, _ in movedRows[segment.id.hex].map { (segment, $0) } }
        if let rows = try loadRows(whole, of: manifest, columns: columns, into: "\(prefix)_moved") { out.append(rows) }
        return out
    }

    /// Loads the rows of `segments` of a version as `columns` (NULL where
    /// the version lacks one), and the rows of the `adding` queries.
    private func load(_ manifest: Manifest?, segments: [SegmentRef], columns: [Column], into table: String, adding: [String]) throws(UDRError) {
        guard let manifest, !segments.isEmpty else {
            let parts = ["SELECT \(typedNulls(columns)) WHERE false"] + adding
            return try run("CREATE VIEW \(table) AS \(parts.joined(separator: " UNION ALL "))")
        }
        // Read as the wider schema: the side's segments name their own columns.
        let named = segments.map { segment -> SegmentRef in
            var copy = segment
            copy.columns = manifest.columnNames(of: segment)
            return copy
        }
        var files: [String] = []
        for segment in named { files.append(try materialize(segment)) }
        let wide = Manifest(table: manifest.table, version: manifest.version, columns: columns, key: manifest.key, segments: named)
        let parts = [Repository.segmentSelect(wide, segments: named, files: files)] + adding
        try run("CREATE VIEW \(table) AS \(parts.joined(separator: " UNION ALL "))")
    }

    private func checkUnique(_ key: [String], in table: String, side: String) throws(UDRError) {
        let cols = key.map(quoteIdentifier).joined(separator: ", ")
        let dupes = try query(
            "SELECT CAST(row(\(cols)) AS VARCHAR) FROM \(table) GROUP BY \(cols) HAVING count(*) > 1 ORDER BY 1 LIMIT 5")
        guard dupes.count == 0 else {
            throw UDRError(
                .duplicateKey,
                "(\(key.joined(separator: ", "))) is not a key of \(side): \(dupes.rows.map { $0[0].description }.joined(separator: ", ")) occur more than once. Pass columns that identify one row."
            )
        }
    }

    // MARK: Reading the result

    /// A key match between aliases `a` and `b`.
    static func match(_ key: [String], _ a: String, _ b: String) -> String {
        key.map { "\(a).\(quoteIdentifier($0)) IS NOT DISTINCT FROM \(b).\(quoteIdentifier($0))" }.joined(separator: " AND ")
    }

    /// Rows inserted, deleted and updated.
    func counts(_ shape: Shape) throws(UDRError) -> RowCounts {
        guard let key = shape.key else {
            let row = try query("SELECT (SELECT count(*) FROM \(shape.new)), (SELECT count(*) FROM \(shape.old))").rows[0]
            return RowCounts(inserted: row[0].int ?? 0, deleted: row[1].int ?? 0, updated: 0)
        }
        let match = Self.match(key, "o", "n")
        let row = try query(
            """
            SELECT
              (SELECT count(*) FROM \(shape.new) n WHERE NOT EXISTS (SELECT 1 FROM \(shape.old) o WHERE \(match))),
              (SELECT count(*) FROM \(shape.old) o WHERE NOT EXISTS (SELECT 1 FROM \(shape.new) n WHERE \(match))),
              (SELECT count(*) FROM \(shape.old) o WHERE EXISTS (SELECT 1 FROM \(shape.new) n WHERE \(match)))
            """
        ).rows[0]
        return RowCounts(inserted: row[0].int ?? 0, deleted: row[1].int ?? 0, updated: (row[2].int ?? 0) + shape.pairUpdates)
    }

    /// The row-level change feed: every changed row with `_change` =
    /// insert, delete, update_preimage or update_postimage, in key order
    /// (needs a `complete` build).
    static func feedSQL(_ shape: Shape) -> String {
        let names = shape.columns.map { quoteIdentifier($0.name) }.joined(separator: ", ")
        guard let key = shape.key else {
            return """
                SELECT '\(ChangeFeedKind.delete.rawValue)' AS _change, \(names) FROM \(shape.old)
                UNION ALL SELECT '\(ChangeFeedKind.insert.rawValue)', \(names) FROM \(shape.new)
                """
        }
        let match = Self.match(key, "o", "n")
        let order = key.map(quoteIdentifier).joined(separator: ", ")
        return """
            SELECT * EXCLUDE (__rank) FROM (
              SELECT '\(ChangeFeedKind.insert.rawValue)' AS _change, \(names), 3 AS __rank FROM \(shape.new) n WHERE NOT EXISTS (SELECT 1 FROM \(shape.old) o WHERE \(match))
              UNION ALL SELECT '\(ChangeFeedKind.delete.rawValue)', \(names), 0 FROM \(shape.old) o WHERE NOT EXISTS (SELECT 1 FROM \(shape.new) n WHERE \(match))
              UNION ALL SELECT '\(ChangeFeedKind.updatePreimage.rawValue)', \(names), 1 FROM \(shape.old) o WHERE EXISTS (SELECT 1 FROM \(shape.new) n WHERE \(match))
              UNION ALL SELECT '\(ChangeFeedKind.updatePostimage.rawValue)', \(names), 2 FROM \(shape.new) n WHERE EXISTS (SELECT 1 FROM \(shape.old) o WHERE \(match))
            ) ORDER BY \(order), __rank
            """
    }

    /// One row per change, values as text: `table`, `change` (insert,
    /// delete, update), `key` (`col=value, …`), `column`, `old`, `new`.
    /// An update gives one row per changed column; an insert or delete
    /// one row with the whole row in `new` or `old`. Ordered by key, then
    /// column position; `ordinal` orders tables.
    static func cellsSQL(_ shape: Shape, table: TableName, ordinal: Int) -> String {
        let label = quoteLiteral(table.rawValue)
        let all = shape.columns.map { quoteIdentifier($0.name) }
        func whole(_ alias: String) -> String { "CAST(struct_pack(\(all.map { "\($0) := \(alias).\($0)" }.joined(separator: ", "))) AS VARCHAR)" }
        guard let key = shape.key else {
            // Deletes, then inserts.
            return """
                SELECT \(ordinal) AS __t, row_number() OVER (ORDER BY __side) AS __n, \(label) AS "table", change, NULL::VARCHAR AS key, NULL::VARCHAR AS "column", old, new
                FROM (SELECT 0 AS __side, 'delete' AS change, \(whole("o")) AS old, NULL::VARCHAR AS new FROM \(shape.old) o
                      UNION ALL SELECT 1, 'insert', NULL, \(whole("n")) FROM \(shape.new) n)
                """
        }
        let match = Self.match(key, "o", "n")
        func keyText(_ alias: String) -> String {
            "concat_ws(', ', \(key.map { "\(quoteLiteral($0 + "=")) || coalesce(CAST(\(alias).\(quoteIdentifier($0)) AS VARCHAR), 'NULL')" }.joined(separator: ", ")))"
        }
        let order = key.indices.map { "__k.__k\($0)" }.joined(separator: ", ")
        var parts = [
            "SELECT \(key.enumerated().map { "n.\(quoteIdentifier($1)) AS __k\($0)" }.joined(separator: ", ")), -1 AS __c, 'insert' AS change, \(keyText("n")) AS key, NULL::VARCHAR AS \"column\", NULL::VARCHAR AS old, \(whole("n")) AS new FROM \(shape.new) n WHERE NOT EXISTS (SELECT 1 FROM \(shape.old) o WHERE \(match))",
            "SELECT \(key.map { "o.\(quoteIdentifier($0))" }.joined(separator: ", ")), -1, 'delete', \(keyText("o")), NULL, \(whole("o")), NULL FROM \(shape.old) o WHERE NOT EXISTS (SELECT 1 FROM \(shape.new) n WHERE \(match))",
        ]
        for (position, column) in shape.columns.enumerated() where !key.contains(column.name) {
            let c = quoteIdentifier(column.name)
            parts.append(
                "SELECT \(key.map { "o.\(quoteIdentifier($0))" }.joined(separator: ", ")), \(position), 'update', \(keyText("o")), \(quoteLiteral(column.name)), CAST(o.\(c) AS VARCHAR), CAST(n.\(c) AS VARCHAR) FROM \(shape.old) o JOIN \(shape.new) n ON \(match) WHERE o.\(c) IS DISTINCT FROM n.\(c)"
            )
        }
        return """
            SELECT \(ordinal) AS __t, row_number() OVER (ORDER BY \(order), __k.__c) AS __n, \(label) AS "table", change, key, "column", old, new
            FROM (\(parts.joined(separator: "\nUNION ALL "))) AS __k
            """
    }

    private func run(_ sql: String) throws(UDRError) {
        do { try connection.execute(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
    }

    private func query(_ sql: String) throws(UDRError) -> ResultSet {
        do { return try connection.query(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
    }
}

/// The blobs of each column of segments (``SegmentRecipe/columnBlobs``),
/// each recipe read once.
struct ColumnBlobs {
    let recipe: @Sendable (SegmentRef) throws(UDRError) -> SegmentRecipe
    private var known: [ObjectID: [Int: [ObjectID]]?] = [:]

    init(recipe: @escaping @Sendable (SegmentRef) throws(UDRError) -> SegmentRecipe) { self.recipe = recipe }

    /// Reads the recipes of `segments` not read yet, on one thread per core.
    mutating func prefetch(_ segments: [SegmentRef]) throws(UDRError) {
        var unread: [ObjectID: SegmentRef] = [:]
        for segment in segments where known[segment.id] == nil { unread[segment.id] = segment }
        let missing = Array(unread.values)
        guard missing.count > 1 else { return }
        let results = SlotBox<[Int: [ObjectID]]?>(count: missing.count)
        let failures = FailureBox()
        let (recipe, workers) = (recipe, max(1, min(ProcessInfo.processInfo.activeProcessorCount, missing.count)))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for index in stride(from: worker, to: missing.count, by: workers) where !failures.failed {
                do throws(UDRError) { results.set(index, try recipe(missing[index]).columnBlobs) } catch { failures.record(error) }
            }
        }
        if let error = failures.first { throw error }
        for (segment, blobs) in zip(missing, results.values) { known[segment.id] = .some(blobs ?? nil) }
    }

    mutating func of(_ segment: SegmentRef) throws(UDRError) -> [Int: [ObjectID]]? {
        if let blobs = known[segment.id] { return blobs }
        let blobs = try recipe(segment).columnBlobs
        known[segment.id] = blobs
        return blobs
    }
}

/// The kinds of rows in a change feed (the names Delta Lake's change data feed uses).
public enum ChangeFeedKind: String, Sendable, CaseIterable {
    case insert, delete
    case updatePreimage = "update_preimage"
    case updatePostimage = "update_postimage"
}

extension Array {
    var nilIfEmpty: Self? { isEmpty ? nil : self }
}
