import DuckDB
import Foundation
import Logging

/// A snapshot resolved to concrete table versions: which manifest each name
/// in a query reads.
struct ResolvedSnapshot {
    let commit: ObjectID?
    let tables: [TableName: Manifest]
}

extension Repository {
    /// Resolves the base commit of a read.
    func resolveCommit(_ options: ReadOptions) throws(UDRError) -> ObjectID? {
        if let reference = options.commit {
            if options.branch != nil || options.asOf != nil {
                throw UDRError(.invalidArgument, "give --commit, or --branch and/or --as-of, not both: a commit fixes the version")
            }
            return try resolveRef(reference)
        }
        if let asOf = options.asOf { return try commit(on: options.branch, asOf: asOf) }
        return try branchHead(options.branch).head
    }

    /// A full commit id, a unique prefix of one (at least 4 digits), or `tx:N`.
    func resolveCommitReference(_ reference: String) throws(UDRError) -> ObjectID {
        if reference.hasPrefix("tx:"), let tx = Int64(reference.dropFirst(3)) {
            guard let record = try catalog.commitRecord(txID: tx) else { throw UDRError(.notFound, "no commit has transaction id \(tx)") }
            return record.id
        }
        let prefix = reference.lowercased()
        guard prefix.count >= 4, prefix.allSatisfy(\.isHexDigit) else {
            throw UDRError(.invalidArgument, "'\(reference)' is not a commit id: give at least 4 hex digits of one, or tx:N")
        }
        let matches = try catalog.commitRecords(idPrefix: prefix)
        guard let first = matches.first else { throw UDRError(.notFound, "no commit id starts with \(prefix)") }
        guard matches.count == 1 else {
            throw UDRError(.invalidArgument, "\(prefix) is ambiguous: \(matches.count) commits start with it; give more digits")
        }
        return first.id
    }

    func manifest(of table: TableName, version: Int) throws(UDRError) -> Manifest {
        let versions = try catalog.tableVersions(table)
        guard !versions.isEmpty else { throw UDRError(.notFound, "there is no table '\(table)'") }
        guard let record = versions.first(where: { $0.version == version }) else {
            throw UDRError(
                .notFound,
                "table \(table) has no version \(version); its versions are \(versions.map { String($0.version) }.joined(separator: ", "))")
        }
        return try manifest(record.manifest)
    }

    /// The manifests a read sees, by the name it sees them under. With
    /// `sql`, only the tables it may mention are loaded (see ``mentions``).
    func resolveSnapshot(_ options: ReadOptions, for sql: String? = nil) throws(UDRError) -> ResolvedSnapshot {
        if let id = options.transaction {
            guard options.commit == nil, options.asOf == nil else {
                throw UDRError(.invalidArgument, "a read inside a transaction sees its snapshot; drop --commit and --as-of")
            }
            return try openTransactionNow(id).snapshot(pins: options.pins, for: sql)
        }
        return try snapshot(at: resolveCommit(options), pins: options.pins, for: sql)
    }

    func snapshot(at commitID: ObjectID?, pins: [TablePin], for sql: String?) throws(UDRError) -> ResolvedSnapshot {
        var tables: [TableName: Manifest] = [:]
        let pinned = Set(pins.map(\.alias))
        let mentioned = Mentions(sql)
        if let commitID {
            for (name, entry) in try commit(commitID).tables where !pinned.contains(name) && mentioned(name) {
                tables[name] = try manifest(entry.manifest)
            }
        }
        for pin in pins {
            switch pin.target {
            case .version(let version):
                tables[pin.alias] = try manifest(of: pin.table, version: version)
            case .ref(let ref):
                guard let entry = try commit(try resolveRef(ref)).tables[pin.table] else {
                    throw UDRError(.notFound, "there is no table '\(pin.table)' at \(ref)")
                }
                tables[pin.alias] = try manifest(entry.manifest)
            }
        }
        return ResolvedSnapshot(commit: commitID, tables: tables)
    }

    /// Whether a query may refer to a table: its name (the part after the
    /// last dot) occurs in the query's text, ignoring case. It never misses
    /// a reference, so a query over one table of thousands loads only what
    /// it can read. Without a query, every table.
    struct Mentions {
        /// The query's text, lower-cased once, as bytes (a case-insensitive
        /// string search per table cost a query over 78 tables 0.8 ms).
        private let text: [UInt8]?

        init(_ sql: String?) { text = sql.map { Array($0.lowercased().utf8) } }

        func callAsFunction(_ table: TableName) -> Bool { text.map { Self.contains($0, table.localName) } ?? true }

        /// Whether the lower-cased `text` holds `word`, ignoring case.
        static func contains(_ text: [UInt8], _ word: String) -> Bool {
            let word = Array(word.lowercased().utf8)
            guard let first = word.first, word.count <= text.count else { return word.isEmpty }
            var start = 0
            while start <= text.count - word.count {
                if text[start] == first && text[start..<(start + word.count)].elementsEqual(word) { return true }
                start += 1
            }
            return false
        }
    }

    /// Creates a view of each table of `snapshot` on `connection`, over its
    /// materialized segments (less those key pruning excludes), casting
    /// each column back to its exact type. `grouping` nil reads full scans
    /// as the configuration's read groups. With `views` (a long-lived
    /// database's), a view whose SQL is unchanged is kept, and views of
    /// tables this snapshot does not read are dropped.
    func attach(
        _ snapshot: ResolvedSnapshot, to connection: Connection, for sql: String?, grouping: ReadGrouping? = nil, views: AttachedViews? = nil
    ) throws(UDRError) {
        let pruning = sql.map { KeyPruning(sql: $0, connection: connection, tables: snapshot.tables.values) }
        var schemas = views?.schemas ?? Set<String>()
        defer { views?.schemas = schemas }
        var attached = Set<String>()
        var materialized = false
        var read = Set<String>()
        for (name, manifest) in snapshot.tables.sorted(by: { $0.key < $1.key }) {
            let pruned = pruning?.segments(of: manifest, readAs: name) ?? manifest.segments
            let materialize = { (segment: SegmentRef) throws(UDRError) -> String in
                let (path, created) = try self.cache.materialize(segment, store: self.store, connection: connection)
                materialized = materialized || created
                return path
            }
            var files: [String] = []
            if pruned.count == manifest.segments.count {
                // A full scan reads large read groups instead (ReadGrouping).
                let grouped = try cache.readFiles(
                    pruned, grouping: grouping ?? configuration.readGrouping, connection: connection, materialize: materialize
                ) { logger.warning("\(name): \($0)") }
                files = grouped.files
                materialized = materialized || grouped.built
            } else {
                for segment in pruned { files.append(try materialize(segment)) }
            }
            read.formUnion(files)
            if let namespace = name.namespace, !schemas.contains(namespace) {
                try execute("CREATE SCHEMA IF NOT EXISTS \(quoteIdentifier(namespace))", on: connection)
                schemas.insert(namespace)
            }
            let reference = name.sqlReference
            let select = Self.segmentSelect(manifest, segments: pruned, files: files)
            attached.insert(reference)
            if let views, views.sql[reference] == select { continue }
            views?.sql[reference] = nil
            do throws(UDRError) {
                try execute("CREATE OR REPLACE VIEW \(reference) AS \(select)", on: connection)
            } catch {
                try? connection.execute("DROP VIEW IF EXISTS \(reference)")
                throw error
            }
            views?.sql[reference] = select
        }
        if let views {
            for reference in views.sql.keys where !attached.contains(reference) {
                views.sql[reference] = nil
                try execute("DROP VIEW IF EXISTS \(reference)", on: connection)
            }
        }
        if materialized { cache.evictIfNeeded(keeping: read) }
    }

    /// SQL reading materialized segment files as the table's columns in
    /// their exact types. Segments written before a column was added lack
    /// it; it reads as NULL. `extra` adds read_parquet's own columns
    /// (`filename`, `file_row_number`) to the select list.
    static func segmentSelect(_ manifest: Manifest, segments: [SegmentRef], files: [String], extra: [String] = []) -> String {
        let present = Set(segments.flatMap { manifest.columnNames(of: $0) })
        let storedOtherwise = segments.columnsStoredOtherwise
        var select = manifest.columns.map { column in
            let name = quoteIdentifier(column.name)
            guard present.contains(column.name) else { return "CAST(NULL AS \(column.type)) AS \(name)" }
            let exact = Self.readsBackExactly(column.type) && !storedOtherwise.contains(column.name)
            return exact ? name : "CAST(\(name) AS \(column.type)) AS \(name)"
        }
        select += extra
        var options = extra.map { "\($0) = true" }
        // Files that hold different columns are matched by name (files that
        // all hold the same ones, if more than these, need not be); files
        // that store a column in different types are read in a type that
        // holds them all (DECIMAL and DOUBLE: DOUBLE, exactly), where the
        // first file's type would otherwise be forced on the others.
        let names = manifest.columns.map(\.name)
        if Set(segments.map { $0.columns ?? names }).count > 1 || !storedOtherwise.isEmpty { options.append("union_by_name = true") }
        let list = "[" + files.map(quoteLiteral).joined(separator: ", ") + "]"
        return "SELECT \(select.joined(separator: ", ")) FROM read_parquet(\(([list] + options).joined(separator: ", ")))"
    }

    /// Types that Parquet stores and DuckDB reads back as themselves: a
    /// view reads them without a cast (a cast of every column cost a tenth
    /// of a small table's aggregate).
    static func readsBackExactly(_ type: String) -> Bool {
        exactTypes.contains(type) || (type.hasPrefix("DECIMAL(") && !type.contains("["))
    }

    private static let exactTypes: Set<String> = [
        "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE",
        "VARCHAR", "BLOB", "DATE", "TIMESTAMP",
    ]

    func execute(_ sql: String, on connection: Connection) throws(UDRError) {
        do { try connection.execute(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
    }

    /// DuckDB's error for a query; one naming a table the snapshot lacks
    /// but the repository had (dropped, renamed) says how to read it.
    func queryError(_ error: DuckDBError) -> UDRError {
        let marker = "Table with name "
        guard let start = error.message.range(of: marker), let end = error.message.range(of: " does not exist", range: start.upperBound..<error.message.endIndex),
            let table = try? TableName(String(error.message[start.upperBound..<end.lowerBound])),
            let last = (try? catalog.tableVersions(table))?.max(by: { $0.version < $1.version })
        else { return UDRError(.query, error.message, underlying: error) }
        return UDRError(
            .query,
            "\(error.message)\n\(table) is not in this snapshot (it was dropped or renamed); its last version, \(last.version), reads with --at \(table)=\(last.version) or --commit \(last.commit.short)",
            underlying: error)
    }

    /// Sets up a DuckDB session reading the snapshot and runs `body` in it.
    func withSession<T>(_ options: ReadOptions, sql: String?, _ body: (Connection) throws(UDRError) -> T) throws(UDRError) -> T {
        var clock = StepClock()
        let snapshot = try resolveSnapshot(options, for: sql)
        clock.step("resolve snapshot")
        return try withSession(snapshot, sql: sql, body)
    }

    /// `checkedRead`: `body` runs only SQL that ``SQLScript/requireReads(_:)``
    /// passed, which leaves nothing behind by itself.
    func withSession<T>(
        _ snapshot: ResolvedSnapshot, sql: String?, checkedRead: Bool = false, _ body: (Connection) throws(UDRError) -> T
    ) throws(UDRError) -> T {
        var clock = StepClock()
        return try withReadConnection { (connection, views) throws(UDRError) -> T in
            // The long-lived database keeps its views between reads (only
            // this snapshot's remain); other work runs in a transaction
            // that is rolled back, so it leaves nothing else behind. A
            // checked read skips it (BEGIN and ROLLBACK cost a fifth of a
            // millisecond, as much as the query `SELECT 1`).
            if views != nil { try attach(snapshot, to: connection, for: sql, views: views) }
            let inTransaction = views == nil || !checkedRead
            if inTransaction { try execute("BEGIN TRANSACTION", on: connection) }
            defer { if inTransaction { try? connection.execute("ROLLBACK") } }
            if views == nil { try attach(snapshot, to: connection, for: sql) }
            clock.step("attach views")
            defer { clock.step("run query") }
            return try body(connection)
        }
    }

    // MARK: Public reads

    /// Runs SQL against the snapshot `options` selects; every table is a
    /// view under its name (namespaces are schemas: `org_12.parcels`).
    /// Cancelling the calling task interrupts the query
    /// (``UDRError/Code/interrupted``).
    public func query(_ sql: String, options: ReadOptions = .init()) async throws(UDRError) -> ResultSet {
        try await checkedRead(sql, options: options) { (connection) throws(DuckDBError) -> ResultSet in try connection.query(sql) }.rows
    }

    /// Runs SQL against a snapshot and returns the rows as Arrow record batches.
    public func queryArrow(_ sql: String, options: ReadOptions = .init()) async throws(UDRError) -> ArrowResult {
        try await arrowQuery(sql, options: options).rows
    }

    /// A query's rows as Arrow record batches, and the Arrow schemas their
    /// writers gave the tables it read (``Manifest/arrowSchema``), by table.
    public struct ArrowQuery: Sendable {
        public let rows: ArrowResult
        public let arrowSchemas: [TableName: String]
    }

    /// Runs SQL against a snapshot, for an Arrow client: the rows and the
    /// Arrow schemas of the tables read. Cancelling the calling task
    /// interrupts the query.
    public func arrowQuery(_ sql: String, options: ReadOptions = .init()) async throws(UDRError) -> ArrowQuery {
        let read = try await checkedRead(sql, options: options) { (connection) throws(DuckDBError) -> ArrowResult in
            try connection.queryArrow(sql)
        }
        return ArrowQuery(rows: read.rows, arrowSchemas: read.arrowSchemas)
    }

    /// Runs `run` (SQL that ``SQLScript/requireReads(_:)`` passes) in a
    /// session reading the snapshot `options` selects, interruptibly; also
    /// gives the Arrow schemas of the tables read.
    private func checkedRead<T: Sendable>(
        _ sql: String, options: ReadOptions, _ run: @escaping @Sendable (Connection) throws(DuckDBError) -> T
    ) async throws(UDRError) -> (rows: T, arrowSchemas: [TableName: String]) {
        try SQLScript.requireReads(sql)
        return try await interruptibly { (interrupt) throws(UDRError) -> (rows: T, arrowSchemas: [TableName: String]) in
            var clock = StepClock()
            let snapshot = try self.resolveSnapshot(options, for: sql)
            clock.step("resolve snapshot")
            let rows = try self.withSession(snapshot, sql: sql, checkedRead: true) { (connection) throws(UDRError) -> T in
                try interrupt.run(on: connection) { () throws(UDRError) -> T in
                    do throws(DuckDBError) { return try run(connection) } catch { throw self.queryError(error) }
                }
            }
            return (rows, snapshot.tables.compactMapValues(\.arrowSchema))
        }
    }

    /// A query's rows as DuckDB makes them, batch by batch, and the Arrow
    /// schemas of the tables read.
    public struct ArrowQueryStream: Sendable {
        public let rows: StreamingArrowResult
        public let arrowSchemas: [TableName: String]
    }

    /// Starts SQL (one statement) against a snapshot as a stream: its rows
    /// are made as the consumer reads them, in a DuckDB database of the
    /// stream's own that lives until the stream is released (the
    /// repository's long-lived one serves the other reads meanwhile).
    public func arrowStream(_ sql: String, options: ReadOptions = .init()) async throws(UDRError) -> ArrowQueryStream {
        guard try SQLScript.requireReads(sql).statements.count == 1 else {
            throw UDRError(.invalidArgument, "a streamed query is one statement; run the others without streaming")
        }
        return try await interruptibly { (interrupt) throws(UDRError) -> ArrowQueryStream in
            let snapshot = try self.resolveSnapshot(options, for: sql)
            let connection = try self.freshConnection()
            try self.attach(snapshot, to: connection, for: sql)
            let rows = try interrupt.run(on: connection) { () throws(UDRError) -> StreamingArrowResult in
                do throws(DuckDBError) { return try StreamingArrowResult(connection: connection, sql: sql) } catch { throw self.queryError(error) }
            }
            return ArrowQueryStream(rows: rows, arrowSchemas: snapshot.tables.compactMapValues(\.arrowSchema))
        }
    }

    /// Writes the result of a query to a file.
    public func export(_ sql: String, options: ReadOptions = .init(), to path: String, format: OutputFormat) async throws(UDRError) {
        try SQLScript.requireReads(sql)
        let statement = Self.statement(sql)
        try await blocking { () throws(UDRError) in
            try writeOut { (withoutDictionaries) throws(UDRError) -> Bool in
                try self.withSession(options, sql: statement) { (connection) throws(UDRError) -> Bool in
                    try copyOut(statement, to: path, format: format, withoutDictionaries: withoutDictionaries, on: connection)
                }
            }
        }
    }
}

extension Repository {
    /// The manifest a read sees for `table`: its schema, key and segments.
    public func manifest(of table: TableName, options: ReadOptions = .init()) async throws(UDRError) -> Manifest {
        try await blocking { () throws(UDRError) -> Manifest in try self.manifestNow(of: table, options: options) }
    }

    func manifestNow(of table: TableName, options: ReadOptions) throws(UDRError) -> Manifest {
        // The table's own name as the "query": only it is loaded.
        guard let manifest = try resolveSnapshot(options, for: table.rawValue).tables[table] else {
            throw UDRError(.notFound, "there is no table '\(table)' in this snapshot")
        }
        return manifest
    }

    /// How many segments a query would read of each table it names, after
    /// key pruning (what `query` attaches).
    public func segmentsRead(by sql: String, options: ReadOptions = .init()) async throws(UDRError) -> [TableName: Int] {
        try await blocking { () throws(UDRError) -> [TableName: Int] in
            let snapshot = try self.resolveSnapshot(options, for: sql)
            return try self.withDuckDB { (connection) throws(UDRError) -> [TableName: Int] in
                let pruning = KeyPruning(sql: sql, connection: connection, tables: snapshot.tables.values)
                var out: [TableName: Int] = [:]
                for (name, manifest) in snapshot.tables { out[name] = pruning.segments(of: manifest, readAs: name).count }
                return out
            }
        }
    }

    /// Removes every materialized segment; they are rebuilt from the object
    /// store (and checked) on next use.
    public func clearCache() async throws(UDRError) {
        try await blocking { () throws(UDRError) in
            let fm = FileManager.default
            for name in (try? fm.contentsOfDirectory(atPath: self.cache.directory.path)) ?? [] {
                try? fm.removeItem(atPath: self.cache.directory.path + "/" + name)
            }
        }
    }
}
