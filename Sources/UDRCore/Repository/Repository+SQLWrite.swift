import DuckDB
import Foundation

extension Repository {
    /// Runs a row-changing statement on the table as `tx` sees it and
    /// stages what it did as a row edit.
    ///
    /// DuckDB runs the statement itself, on a table (`__udr_target`) that
    /// holds the rows it can touch: those its condition selects (read from
    /// the segments key pruning keeps), the rows whose keys an `INSERT …
    /// ON CONFLICT` names, or none for a plain `INSERT`. Every other table
    /// the statement names, the target's own name included (a subquery
    /// over it sees the whole table), reads as in a query. What the
    /// statement left in the table, against what it found there, is the
    /// edit: on a keyed table by key, on a keyless one by row position.
    func stageSQLWrite(_ write: SQLWrite, in tx: Transaction, connection: Connection) throws(UDRError) -> (TableName, StagedWrite, ResultSet?) {
        let table = try tx.resolveTable(write.target, for: write.kind == .insert ? "insert into" : "change")
        let current = try tx.current(table)
        guard let manifest = current.manifest else { throw UDRError(.notFound, "there is no table '\(table)'") }
        let version = try catalog.latestVersionNumber(table) + 1
        let base = manifest.renumbered(version)
        if write.kind == .insertOnConflict && base.key.isEmpty {
            throw UDRError(
                .invalidArgument,
                "\(table) has no key, so INSERT OR REPLACE, OR IGNORE and ON CONFLICT have nothing to match; use a plain INSERT, or give the table a key with `udr write --key`"
            )
        }
        let snapshot = try tx.snapshot(for: write.statement.text)
        // First without a view of the target: a statement that reads it
        // elsewhere fails to find it, and runs again with the whole view.
        for withTargetView in [false, true] {
            // Not in a DuckDB transaction: the writer's own connections read these tables.
            defer { Self.dropScratch(on: connection) }
            var tables = snapshot.tables
            tables[table] = withTargetView ? manifest : nil
            if !withTargetView { try execute("DROP VIEW IF EXISTS \(table.sqlReference)", on: connection) }
            try attach(ResolvedSnapshot(commit: snapshot.commit, tables: tables), to: connection, for: nil, grouping: .off)
            do throws(UDRError) {
                let (staged, rows) = try run(write, on: table, base: base, current: current, in: tx, connection: connection)
                let unchanged = StagedWrite(
                    table: table, changed: false, rows: manifest.rows, segments: manifest.segments.count, logicalBytes: 0, bytesAdded: 0,
                    counts: RowCounts())
                return (table, staged ?? unchanged, rows)
            } catch where !withTargetView && Self.missesTable(error, table) {
                continue
            }
        }
        throw UDRError(.query, "cannot run the statement on \(table)")
    }

    /// Drops the tables and views a write made on `connection` (named `__udr_…`).
    static func dropScratch(on connection: Connection) {
        guard
            let rows = try? connection.query(
                "SELECT 'VIEW', view_name FROM duckdb_views() WHERE starts_with(view_name, '__udr_') AND NOT internal UNION ALL SELECT 'TABLE', table_name FROM duckdb_tables() WHERE starts_with(table_name, '__udr_')"
            ).rows
        else { return }
        for row in rows {
            guard let kind = row[0].string, let name = row[1].string else { continue }
            try? connection.execute("DROP \(kind) IF EXISTS \(quoteIdentifier(name))")
        }
    }

    /// Whether DuckDB failed for want of the table's view.
    private static func missesTable(_ error: UDRError, _ table: TableName) -> Bool {
        let message = error.message.lowercased()
        return message.contains("table with name \(table.localName.lowercased()) does not exist")
    }

    /// Runs the statement on the rows it can touch and stages what it
    /// did (nil when it changed nothing), with what its RETURNING clause
    /// returned.
    private func run(
        _ write: SQLWrite, on table: TableName, base: Manifest, current: Transaction.TableState, in tx: Transaction, connection: Connection
    ) throws(UDRError) -> (StagedWrite?, ResultSet?) {
        let key = base.key
        let columns = base.columns
        let materialize = materializer(connection)
        let definition = columns.map { "\(quoteIdentifier($0.name)) \($0.type)" }.joined(separator: ", ")
        let keyList = key.map(quoteIdentifier).joined(separator: ", ")
        func sql(_ text: String, _ what: String? = nil) throws(UDRError) {
            do throws(DuckDBError) { try connection.execute(text) } catch {
                throw Self.statementError(error, what: what, table: table)
            }
        }

        // The segments that can hold rows the statement touches.
        var segments = base.segments
        switch write.kind {
        case .insert:
            segments = []
        case .insertOnConflict:
            try sql("CREATE TABLE __udr_probe (\(definition), PRIMARY KEY (\(keyList)))")
            try sql(write.rewritten(as: "__udr_probe"))
            segments = try segmentsHolding(keysOf: "__udr_probe", in: base, connection: connection)
        case .update, .delete, .merge:
            segments = KeyPruning(sql: write.candidates(from: table.sqlReference), connection: connection, tables: [base])
                .segments(of: base, readAs: table)
        }
        var files: [String] = []
        for segment in segments { files.append(try materialize(segment)) }
        if key.isEmpty { files = RowEditor.distinctPaths(files) }
        let extra = key.isEmpty ? ["filename", "file_row_number"] : []
        let scan =
            segments.isEmpty
            ? "SELECT \(typedNulls(columns))\(extra.isEmpty ? "" : ", ''::VARCHAR AS filename, 0::BIGINT AS file_row_number") WHERE false"
            : Self.segmentSelect(base, segments: segments, files: files, extra: extra)
        try sql("CREATE VIEW __udr_scan AS \(scan)")

        // The rows the statement can touch, as a table of the table's columns.
        let names = columns.map { quoteIdentifier($0.name) }
        let list = names.joined(separator: ", ")
        switch write.kind {
        case .insert:
            try sql("CREATE TABLE __udr_target (\(definition))")
            try sql("CREATE TABLE __udr_places AS SELECT 0::BIGINT AS __udr_rid, * FROM __udr_scan")
        case .insertOnConflict:
            try sql("CREATE TABLE __udr_target (\(definition), PRIMARY KEY (\(keyList)))")
            try sql(
                "INSERT INTO __udr_target SELECT \(list) FROM __udr_scan s WHERE (\(key.map { "s." + quoteIdentifier($0) }.joined(separator: ", "))) IN (SELECT (\(keyList)) FROM __udr_probe)"
            )
        case .update, .delete, .merge:
            try sql("CREATE TABLE __udr_places AS SELECT row_number() OVER () - 1 AS __udr_rid, * FROM (\(write.candidates(from: "__udr_scan")))", "the statement's condition")
            try sql("CREATE TABLE __udr_target AS SELECT \(list) FROM __udr_places ORDER BY __udr_rid")
        }
        try sql("CREATE TABLE __udr_before AS SELECT rowid AS __udr_rid, * FROM __udr_target")

        // The statement itself.
        let returned: ResultSet
        do throws(DuckDBError) { returned = try connection.query(write.rewritten(as: "__udr_target")) } catch {
            throw Self.statementError(error, what: nil, table: table)
        }

        // What it did.
        let differ = try RowEditor.rowsDiffer("a", "b", columns: columns)
        if key.isEmpty {
            try sql(
                """
                CREATE TABLE __udr_touch AS
                SELECT p.filename, p.file_row_number, true AS __udr_deleted, \(names.map { "p.\($0)" }.joined(separator: ", "))
                  FROM __udr_places p WHERE NOT EXISTS (SELECT 1 FROM __udr_target a WHERE a.rowid = p.__udr_rid)
                UNION ALL
                SELECT p.filename, p.file_row_number, false, \(names.map { "a.\($0)" }.joined(separator: ", "))
                  FROM __udr_target a JOIN __udr_before b ON a.rowid = b.__udr_rid JOIN __udr_places p ON p.__udr_rid = a.rowid
                  WHERE \(differ)
                """)
            try sql("CREATE TABLE __udr_up AS SELECT a.* FROM __udr_target a WHERE NOT EXISTS (SELECT 1 FROM __udr_before b WHERE b.__udr_rid = a.rowid)")
        } else {
            try writer(connection).checkKeys(key, in: "__udr_target")
            let match = key.map { "a.\(quoteIdentifier($0)) = b.\(quoteIdentifier($0))" }.joined(separator: " AND ")
            try sql(
                "CREATE TABLE __udr_del AS SELECT \(key.map { "b." + quoteIdentifier($0) }.joined(separator: ", ")) FROM __udr_before b WHERE NOT EXISTS (SELECT 1 FROM __udr_target a WHERE \(match))"
            )
            try sql(
                "CREATE TABLE __udr_up AS SELECT a.* FROM __udr_target a WHERE NOT EXISTS (SELECT 1 FROM __udr_before b WHERE \(match) AND NOT \(differ))"
            )
            try sql(
                "CREATE TABLE __udr_new_keys AS SELECT \(key.map { "a." + quoteIdentifier($0) }.joined(separator: ", ")) FROM __udr_target a WHERE NOT EXISTS (SELECT 1 FROM __udr_before b WHERE \(match))"
            )
        }
        let editor = RowEditor(
            connection: connection, writer: writer(connection), table: table, manifest: base, policy: configuration.segmentation,
            materialize: materialize, file: segmentFile, recordsChanges: true)
        let verb = ["insert into", "insert into", "update", "delete from", "merge into"][[.insert, .insertOnConflict, .update, .delete, .merge].firstIndex(of: write.kind)!]
        let edited =
            key.isEmpty
            ? try editor.applyPositional(columns: columns)
            : try editor.applyDelta(
                columns: columns,
                newKeys: RowEditor.NewKeys(
                    relation: "__udr_new_keys", verb: verb, hint: "Use INSERT OR REPLACE, or INSERT … ON CONFLICT, to replace rows."))
        let rows = write.returns ? returned : nil
        guard let edited else { return (nil, rows) }
        let result = try record(edited, of: current, connection: connection)
        let staged = try stage(result.written, of: table, in: tx, current: current, kind: key.isEmpty ? .replace : .rows, counts: result.counts)
        return (staged, rows)
    }

    /// DuckDB's error for a statement run on the stand-in tables, told of the table.
    private static func statementError(_ error: DuckDBError, what: String?, table: TableName) -> UDRError {
        var message = error.message
        for standIn in ["__udr_target", "__udr_probe", "__udr_scan"] {
            message = message.replacingOccurrences(of: standIn, with: table.rawValue)
        }
        return UDRError(.query, what.map { "cannot evaluate \($0) on \(table): \(message)" } ?? message, underlying: error)
    }

    /// The segments of `manifest` whose key range can hold a key of
    /// `relation` (all, unless the key's first column is an integer and
    /// the keys are few enough to list).
    private func segmentsHolding(keysOf relation: String, in manifest: Manifest, connection: Connection) throws(UDRError) -> [SegmentRef] {
        guard let column = KeyPruning.prunableKey(of: manifest) else { return manifest.segments }
        let result: ResultSet
        do throws(DuckDBError) {
            result = try connection.query("SELECT DISTINCT CAST(\(quoteIdentifier(column)) AS BIGINT) FROM \(relation) LIMIT 10001")
        } catch { throw UDRError(.query, error.message, underlying: error) }
        guard result.count <= 10000 else { return manifest.segments }
        return KeyPruning.segments(of: manifest, holding: result.rows.compactMap { $0[0].int }, in: column)
    }

    /// Creates (or replaces) a table from `CREATE TABLE … AS query` or
    /// `CREATE TABLE … (columns, PRIMARY KEY (…))`, staged in `tx`.
    func stageCreate(_ create: SQLCreateTable, in tx: Transaction, connection: Connection) throws(UDRError) -> (TableName, StagedWrite, ResultSet?) {
        let existing = try? tx.resolveTable(create.name, for: "create")
        let table: TableName
        if let existing { table = existing } else { table = try TableName(create.name.joined(separator: ".")) }
        if let existing {
            if create.ifNotExists {
                let manifest = try tx.current(existing).manifest
                return (
                    existing,
                    StagedWrite(
                        table: existing, changed: false, rows: manifest?.rows ?? 0, segments: manifest?.segments.count ?? 0, logicalBytes: 0,
                        bytesAdded: 0, counts: RowCounts()), nil
                )
            }
            guard create.orReplace else {
                throw UDRError(
                    .alreadyExists,
                    "there is a table '\(existing)' already: use CREATE OR REPLACE TABLE to replace it, or INSERT to add rows")
            }
        }
        switch create.body {
        case .query(let query):
            return (table, try stageWrite(table, from: .sql(query), key: existing == nil ? [] : nil, in: tx), nil)
        case .columns(let definitions):
            let (columns, key) = try Self.tableDefinition(definitions, of: table, connection: connection)
            let empty = "SELECT \(typedNulls(columns)) WHERE false"
            return (table, try stageWrite(table, from: .sql(empty), key: key, in: tx), nil)
        }
    }

    /// The columns and primary key of a `CREATE TABLE` column list, as
    /// DuckDB reads it. Constraints UDR does not keep are refused.
    static func tableDefinition(_ definitions: String, of table: TableName, connection: Connection) throws(UDRError) -> ([Column], [String]) {
        let scratch = "__udr_definition"
        func query(_ sql: String) throws(UDRError) -> ResultSet {
            do throws(DuckDBError) { return try connection.query(sql) } catch {
                throw UDRError(
                    .query, "cannot create \(table): \(error.message.replacingOccurrences(of: scratch, with: table.rawValue))", underlying: error)
            }
        }
        _ = try query("BEGIN TRANSACTION")
        defer { try? connection.execute("ROLLBACK") }
        _ = try query("CREATE TABLE \(scratch) \(definitions)")
        let columns = try query(
            "SELECT column_name, data_type, column_default FROM duckdb_columns() WHERE table_name = '\(scratch)' ORDER BY column_index")
        var out: [Column] = []
        for row in columns.rows {
            guard let name = row[0].string, let type = row[1].string else { continue }
            if let value = row[2].string {
                throw UDRError(
                    .invalidArgument, "cannot create \(table): column \(name) has DEFAULT \(value), which UDR does not keep; drop the DEFAULT")
            }
            out.append(Column(name: name, type: type))
        }
        var key: [String] = []
        var notNull: [String] = []
        for row in try query(
            "SELECT constraint_type, unnest(constraint_column_names), constraint_text FROM duckdb_constraints() WHERE table_name = '\(scratch)' ORDER BY constraint_index"
        ).rows {
            let kind = row[0].string ?? ""
            let name = row[1].string ?? ""
            switch kind {
            case "PRIMARY KEY": key.append(name)
            case "NOT NULL": notNull.append(name)
            default:
                throw UDRError(
                    .invalidArgument,
                    "cannot create \(table): UDR keeps a table's columns and its PRIMARY KEY, not \(kind) constraints (\(row[2].string ?? "")); drop it"
                )
            }
        }
        let unkept = notNull.filter { !key.contains($0) }
        if !unkept.isEmpty {
            throw UDRError(
                .invalidArgument,
                "cannot create \(table): UDR keeps NOT NULL only on the key's columns, not on \(unkept.joined(separator: ", ")); drop it or make the column part of the PRIMARY KEY"
            )
        }
        return (out, key)
    }
}

extension Transaction {
    /// The table a statement names (`parts` as written): the one of that
    /// name, else the one whose name matches ignoring case (as SQL takes
    /// unquoted names).
    /// The tables the transaction sees: its snapshot's, less those it dropped, with those it created.
    func tableNames() throws(UDRError) -> Set<TableName> {
        var names = Set(try base.map { (id) throws(UDRError) in Array(try repository.commit(id).tables.keys) } ?? [])
        for (name, table) in try staged() {
            if table.kind == .drop { names.remove(name) } else { names.insert(name) }
        }
        return names
    }

    func resolveTable(_ parts: [String], for verb: String) throws(UDRError) -> TableName {
        let text = parts.joined(separator: ".")
        let names = try tableNames()
        if let name = try? TableName(text), names.contains(name) { return name }
        let matching = names.filter { $0.rawValue.lowercased() == text.lowercased() }
        if matching.count == 1, let name = matching.first { return name }
        if matching.count > 1 {
            throw UDRError(
                .invalidArgument,
                "'\(text)' matches the tables \(matching.map(\.rawValue).sorted().joined(separator: ", ")) ignoring case: quote the name to pick one")
        }
        throw UDRError(
            .notFound,
            "cannot \(verb) '\(text)': there is no such table on \(branch). Create it with CREATE TABLE or `udr write`; `udr tables` lists the tables")
    }
}
