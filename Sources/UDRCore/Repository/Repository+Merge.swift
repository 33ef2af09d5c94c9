import DuckDB
import Foundation

/// How a merge resolves a cell (or row) both sides changed differently.
public enum MergeStrategy: String, Sendable, Codable, CaseIterable {
    /// Report the conflicts and commit nothing.
    case fail
    /// Keep the target branch's value.
    case ours
    /// Take the merged ref's value.
    case theirs
}

/// A cell (or a whole row, or a whole table) both sides of a merge changed
/// differently. Values are DuckDB's text form; NULL where a side has no row.
public struct MergeConflict: Sendable, Codable, Hashable {
    public let table: TableName
    /// `col=value, …`; nil when the table as a whole conflicts.
    public let key: String?
    /// nil when a whole row conflicts (deleted on one side, changed on the
    /// other) or the whole table does.
    public let column: String?
    public let base: String?
    public let ours: String?
    public let theirs: String?
    /// What conflicts: "changed on both sides", "deleted by ours, changed by
    /// theirs", "keyless table changed on both sides", …
    public let reason: String

    public init(table: TableName, key: String?, column: String?, base: String?, ours: String?, theirs: String?, reason: String) {
        self.table = table
        self.key = key
        self.column = column
        self.base = base
        self.ours = ours
        self.theirs = theirs
        self.reason = reason
    }
}

/// What a merge did.
public struct MergeResult: Sendable, Codable, Hashable {
    public enum Outcome: String, Sendable, Codable {
        case upToDate = "up-to-date"
        case fastForward = "fast-forward"
        case merged
        /// Conflicts remain and nothing was committed.
        case conflicts
    }

    public let outcome: Outcome
    public let target: String
    public let source: ObjectID
    /// The merge base (nil: no common ancestor).
    public let base: ObjectID?
    /// The target's head after the merge.
    public let head: ObjectID?
    /// Tables the merge changed on the target.
    public let tables: [TableName]
    /// The conflicts: unresolved for `.conflicts`, else the ones the strategy resolved.
    public let conflicts: [MergeConflict]
}

extension Repository {
    /// Merges `source` (any ref) into the branch `target` (default: the
    /// current branch): a fast-forward when the target has not moved since
    /// they diverged; otherwise three-way against the merge base. A table
    /// changed on one side only is taken from that side; a keyed table
    /// changed on both merges row by row and cell by cell. Conflicts are
    /// returned and nothing is committed, unless `strategy` resolves them.
    public func merge(
        _ source: String, into target: String? = nil, strategy: MergeStrategy = .fail, message: String? = nil, author: String? = nil
    ) async throws(UDRError) -> MergeResult {
        try await blocking { () throws(UDRError) -> MergeResult in
            try self.mergeNow(source, into: target, strategy: strategy, message: message, author: author)
        }
    }

    private func mergeNow(_ source: String, into requested: String?, strategy: MergeStrategy, message: String?, author: String?) throws(UDRError)
        -> MergeResult
    {
        let theirs = try resolveRef(source)
        let (target, ours) = try branchHead(requested)
        let graph = try CommitGraph(catalog.allCommitRecords())
        let base = ours.flatMap { graph.mergeBase($0, theirs) }
        func result(_ outcome: MergeResult.Outcome, head: ObjectID?, tables: [TableName] = [], conflicts: [MergeConflict] = [])
            -> MergeResult
        {
            MergeResult(outcome: outcome, target: target, source: theirs, base: base, head: head, tables: tables, conflicts: conflicts)
        }
        if ours == theirs || (base != nil && base == theirs) { return result(.upToDate, head: ours) }
        if ours == nil || base == ours {
            try catalog.moveBranch(target, from: ours, to: theirs)
            let before = try ours.map { (id) throws(UDRError) in try commit(id).tables } ?? [:]
            let after = try commit(theirs).tables
            let moved = after.filter { before[$0.key]?.manifest != $0.value.manifest }.map(\.key).sorted()
            return result(.fastForward, head: theirs, tables: moved)
        }
        let baseTables = try base.map { (id) throws(UDRError) in try commit(id).tables } ?? [:]
        let theirTables = try commit(theirs).tables

        let (tx, lease) = try autocommitTransaction(on: target, mergeParents: [theirs])
        defer { try? catalog.endLease(lease) }
        guard tx.base == ours else {
            throw UDRError(.conflict, "\(target) moved while the merge began; nothing was committed. Run the merge again.")
        }
        let ourTables = try commit(ours!).tables
        var conflicts: [MergeConflict] = []
        var changed: [TableName] = []
        // Tables renamed on one side since the base: merged under the new
        // name with the other side's changes to the old one.
        var handled = Set<TableName>()
        let theirRenames = try base.map { (id) throws(UDRError) in try renames(from: id, to: theirs) } ?? [:]
        let ourRenames = try base.map { (id) throws(UDRError) in try renames(from: id, to: ours!) } ?? [:]
        for (side, renamesOnSide) in [("theirs", theirRenames), ("ours", ourRenames)] {
            for (name, old) in renamesOnSide.sorted(by: { $0.key < $1.key }) {
                let (renaming, other) = side == "theirs" ? (theirTables, ourTables) : (ourTables, theirTables)
                guard let b = baseTables[old]?.manifest, let renamedID = renaming[name]?.manifest, renaming[old] == nil,
                    !handled.contains(old)
                else { continue }
                let otherRenames = side == "theirs" ? ourRenames : theirRenames
                if otherRenames[name] == old { continue }  // both renamed it alike: merged as one table below
                handled.formUnion([old, name])
                guard let otherID = other[old]?.manifest, other[name] == nil, !otherRenames.values.contains(old) else {
                    let reason =
                        other[name] != nil ? "renamed to \(name) by \(side), and the other side has a table \(name)"
                        : "renamed to \(name) by \(side), dropped or renamed otherwise by the other side"
                    conflicts.append(MergeConflict(table: name, key: nil, column: nil, base: nil, ours: nil, theirs: nil, reason: reason))
                    continue
                }
                if side == "ours" && otherID == b { continue }  // theirs left the old table as it was
                if side == "theirs" {
                    // Ours holds the old name: rename it, then bring theirs' content.
                    _ = try stageRename(old, to: name, in: tx)
                    if otherID == b {
                        try stageExisting(renamedID, of: name, in: tx)
                    } else {
                        let merged = try mergeTable(
                            name, base: try manifest(b), baseID: b, ours: try manifest(otherID).renamed(name, version: 0),
                            theirs: try manifest(renamedID), strategy: strategy, in: tx)
                        conflicts += merged.conflicts
                        if merged.takeTheirs { try stageExisting(renamedID, of: name, in: tx) }
                    }
                } else if otherID != b {
                    // Ours renamed it: theirs' changes to the old name come to the new one.
                    let theirManifest = try manifest(otherID).renamed(name, version: 0)
                    let onlyRenamed = try manifest(renamedID).hasSameContent(as: try manifest(b).renamed(name, version: 0))
                    if onlyRenamed {
                        try stageExisting(try store.putJSON(theirManifest).id, of: name, in: tx)
                    } else {
                        let merged = try mergeTable(
                            name, base: try manifest(b), baseID: b, ours: try manifest(renamedID), theirs: theirManifest, strategy: strategy, in: tx)
                        conflicts += merged.conflicts
                        if merged.takeTheirs { try stageExisting(try store.putJSON(theirManifest).id, of: name, in: tx) }
                    }
                }
                changed.append(name)
            }
        }
        for name in Set(theirTables.keys).union(ourTables.keys).subtracting(handled).sorted() {
            let b = baseTables[name]?.manifest
            let o = ourTables[name]?.manifest
            let dropped = theirTables[name] == nil
            guard dropped || (theirTables[name]?.manifest != b && theirTables[name]?.manifest != o) else { continue }
            if dropped && (b == nil || o == nil) { continue }
            // A table one side dropped and the other changed conflicts as a whole.
            if dropped || (o == nil && b != nil) {
                let t = theirTables[name]?.manifest
                if dropped && o == b {
                    _ = try stageDrop(name, ifExists: false, in: tx)
                    changed.append(name)
                    continue
                }
                let reason = dropped ? "dropped by theirs, changed by ours" : "dropped by ours, changed by theirs"
                conflicts.append(MergeConflict(table: name, key: nil, column: nil, base: nil, ours: nil, theirs: nil, reason: reason))
                if strategy == .theirs {
                    if let t { try stageExisting(t, of: name, in: tx) } else { _ = try stageDrop(name, ifExists: false, in: tx) }
                    changed.append(name)
                }
                continue
            }
            guard let t = theirTables[name]?.manifest else { continue }
            let theirManifest = try manifest(t)
            let ourManifest = try o.map { (id) throws(UDRError) in try manifest(id) }
            if let ourManifest, ourManifest.hasSameContent(as: theirManifest) { continue }
            if o == b {
                try stageExisting(t, of: name, in: tx)
                changed.append(name)
                continue
            }
            let baseManifest = try b.map { (id) throws(UDRError) in try manifest(id) }
            let merged = try mergeTable(
                name, base: baseManifest, baseID: b, ours: ourManifest!, theirs: theirManifest, strategy: strategy, in: tx)
            conflicts += merged.conflicts
            if merged.takeTheirs {
                try stageExisting(t, of: name, in: tx)
                changed.append(name)
            } else if merged.staged {
                changed.append(name)
            }
        }
        if strategy == .fail && !conflicts.isEmpty { return result(.conflicts, head: ours, conflicts: conflicts) }
        let record = try commit(tx, message: message ?? "merge \(source) into \(target)", author: author)
        return result(.merged, head: record?.id ?? ours, tables: changed, conflicts: conflicts)
    }

    /// Stages an existing table version as the table's new version.
    private func stageExisting(_ id: ObjectID, of table: TableName, in tx: Transaction) throws(UDRError) {
        let current = try tx.current(table)
        let manifest = try manifest(id)
        // A table renamed in this transaction stays renamed.
        let renamedFrom = current.staged?.kind == .drop ? nil : current.staged?.renamedFrom
        try tx.stage(
            StagedTable(
                table: table, manifest: id, base: current.base, kind: renamedFrom == nil ? .replace : .rename, counts: nil, rows: manifest.rows,
                renamedFrom: renamedFrom),
            replacing: current.staged?.manifest)
    }

    private struct TableMerge {
        var conflicts: [MergeConflict] = []
        /// The strategy took theirs' version whole (a table-level conflict).
        var takeTheirs = false
        /// A merged version was staged.
        var staged = false
    }

    /// Three-way merge of a table both sides changed: merged rows staged,
    /// or theirs taken whole when the strategy resolves a whole-table conflict.
    private func mergeTable(
        _ table: TableName, base: Manifest?, baseID: ObjectID?, ours: Manifest, theirs: Manifest, strategy: MergeStrategy, in tx: Transaction
    ) throws(UDRError) -> TableMerge {
        let version = try catalog.latestVersionNumber(table) + 1
        let merged = try mergeRows(table, base: base, baseID: baseID, onto: ours, changes: theirs, strategy: strategy, version: version)
        var merge = TableMerge(conflicts: merged.conflicts)
        if merged.wholeTable {
            merge.takeTheirs = strategy == .theirs
        } else if let result = merged.result {
            _ = try stage(result.written, of: table, in: tx, current: try tx.current(table), kind: .rows, counts: result.counts)
            merge.staged = true
        }
        return merge
    }

    /// What ``mergeRows`` found and made.
    struct RowMerge {
        var conflicts: [MergeConflict] = []
        /// Each conflict's key as a row (`(42)`), for messages.
        var conflictKeys: [String] = []
        /// The table cannot merge row by row (no key, or its key or
        /// existing columns changed): one whole-table conflict.
        var wholeTable = false
        /// The merged version, unless it equals `onto` or a conflict stopped it.
        var result: RowEditor.Result?
        /// Rows `changes` inserted, deleted and updated relative to the base.
        var counts = RowCounts()
    }

    /// Applies what `changes` changed since `base` to `onto` (which changed
    /// since `base` too), cell by cell: a cell only one side changed takes
    /// that side's value; a cell both changed differently is a conflict,
    /// resolved by `strategy` (`ours` keeps `onto`'s) or, with `.fail`,
    /// stopping before anything is written. Only segments holding touched
    /// rows are rewritten. Serves `merge` and the rebase of a commit whose
    /// branch moved meanwhile.
    func mergeRows(
        _ table: TableName, base: Manifest?, baseID: ObjectID?, onto ours: Manifest, changes theirs: Manifest, strategy: MergeStrategy, version: Int
    ) throws(UDRError) -> RowMerge
    {
        // Cell by cell needs one key on all three, and no column dropped
        // or retyped; otherwise the table conflicts as a whole.
        let key = ours.key
        let baseTypes = Dictionary((base?.columns ?? []).map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        func keeps(_ side: Manifest) -> Bool {
            side.columns.allSatisfy { baseTypes[$0.name] == nil || baseTypes[$0.name] == $0.type }
                && Set(baseTypes.keys).isSubset(of: side.columns.map(\.name))
        }
        let ourTypes = Dictionary(ours.columns.map { ($0.name, $0.type) }, uniquingKeysWith: { a, _ in a })
        let addedTwice = theirs.columns.contains { ourTypes[$0.name] != nil && ourTypes[$0.name] != $0.type }
        guard !key.isEmpty, theirs.key == key, base == nil || base!.key == key, keeps(ours), keeps(theirs), !addedTwice else {
            let reason =
                key.isEmpty
                ? "keyless table changed on both sides: rows cannot be matched, so one side is taken whole"
                : "its key changed, or a column was dropped or retyped, on a side: one side is taken whole"
            let conflict = MergeConflict(
                table: table, key: nil, column: nil, base: base.map { "v\($0.version)" }, ours: "v\(ours.version)", theirs: "v\(theirs.version)",
                reason: reason)
            return RowMerge(conflicts: [conflict], wholeTable: true)
        }
        return try withDuckDB { (connection) throws(UDRError) -> RowMerge in
            let diff = tableDiff(connection)
            let ourDiff = try diff.changes(old: base, oldID: baseID, new: ours, prefix: "__m_o", complete: true)
            let theirDiff = try diff.changes(old: base, oldID: baseID, new: theirs, prefix: "__m_t", complete: true)
            let columns = TableDiff.columns(ours, theirs)
            let cellMerge = CellMerge(connection: connection, key: key, columns: columns, ours: ourDiff, theirs: theirDiff, table: table)
            var merge = RowMerge(counts: try diff.counts(theirDiff))
            (merge.conflicts, merge.conflictKeys) = try cellMerge.run(strategy: strategy)
            if strategy == .fail && !merge.conflicts.isEmpty { return merge }
            let editor = RowEditor(
                connection: connection, writer: writer(connection), table: table, manifest: ours.renumbered(version),
                policy: configuration.segmentation, materialize: materializer(connection), file: segmentFile)
            merge.result = try editor.applyDelta(columns: columns)
            return merge
        }
    }
}

/// The cell-level three-way merge of one keyed table, from the changes
/// each side made to the base (`ours` and `theirs`, complete). Leaves the
/// rows to upsert into ours in `__udr_up` and the keys to delete in
/// `__udr_del` (what ``RowEditor/applyDelta`` takes).
struct CellMerge {
    let connection: Connection
    let key: [String]
    /// The merged schema: ours' columns, then those only theirs has.
    let columns: [Column]
    let ours: TableDiff.Shape
    let theirs: TableDiff.Shape
    let table: TableName

    /// The conflicts, and each one's key as a row (`(42)`).
    func run(strategy: MergeStrategy) throws(UDRError) -> ([MergeConflict], [String]) {
        let keys = key.map(quoteIdentifier).joined(separator: ", ")
        let match = { (a: String, b: String) in TableDiff.match(key, a, b) }
        func value(_ alias: String, _ shape: TableDiff.Shape, _ column: Column) -> String {
            shape.columns.contains { $0.name == column.name } ? "\(alias).\(quoteIdentifier(column.name))" : "CAST(NULL AS \(column.type))"
        }
        // Every key theirs touched, with the base row (theirs' old image),
        // theirs' new row, and ours' row (ours' new image when ours touched
        // the key, else the base row).
        var select = key.map { "k.\(quoteIdentifier($0))" }
        select += [
            "tb.\(quoteIdentifier(key[0])) IS NOT NULL AS __in_base", "tn.\(quoteIdentifier(key[0])) IS NOT NULL AS __in_theirs",
            "(oo.\(quoteIdentifier(key[0])) IS NOT NULL OR ono.\(quoteIdentifier(key[0])) IS NOT NULL) AS __ours_touched",
            "ono.\(quoteIdentifier(key[0])) IS NOT NULL AS __in_ours_new",
        ]
        for (i, column) in columns.enumerated() {
            let b = value("tb", theirs, column)
            select.append("\(b) AS __b\(i)")
            select.append("\(value("tn", theirs, column)) AS __t\(i)")
            select.append(
                "CASE WHEN oo.\(quoteIdentifier(key[0])) IS NOT NULL OR ono.\(quoteIdentifier(key[0])) IS NOT NULL THEN \(value("ono", ours, column)) ELSE \(b) END AS __o\(i)"
            )
        }
        try run(
            """
            CREATE TABLE __m_rows AS SELECT \(select.joined(separator: ", "))
            FROM (SELECT \(keys) FROM \(theirs.old) UNION SELECT \(keys) FROM \(theirs.new)) k
            LEFT JOIN \(theirs.old) tb ON \(match("tb", "k"))
            LEFT JOIN \(theirs.new) tn ON \(match("tn", "k"))
            LEFT JOIN \(ours.old) oo ON \(match("oo", "k"))
            LEFT JOIN \(ours.new) ono ON \(match("ono", "k"))
            """)
        // Ours has the row: ours touched it and kept it, or did not touch a base row.
        let oursHas = "(CASE WHEN __ours_touched THEN __in_ours_new ELSE __in_base END)"
        // Row-level conflicts: one side deleted a base row the other changed.
        let theirsDeletedOursChanged = "(__in_base AND NOT __in_theirs AND __ours_touched AND __in_ours_new)"
        let oursDeletedTheirsChanged = "(__in_base AND __in_theirs AND __ours_touched AND NOT __in_ours_new)"
        func cellConflict(_ i: Int) -> String {
            "(__in_theirs AND \(oursHas) AND __t\(i) IS DISTINCT FROM __o\(i) AND (NOT __in_base OR (__t\(i) IS DISTINCT FROM __b\(i) AND __o\(i) IS DISTINCT FROM __b\(i))))"
        }
        let keyText = "concat_ws(', ', \(key.map { "\(quoteLiteral($0 + "=")) || CAST(\(quoteIdentifier($0)) AS VARCHAR)" }.joined(separator: ", ")))"
        func whole(_ prefix: String) -> String {
            "CAST(struct_pack(\(columns.enumerated().map { "\(quoteIdentifier($1.name)) := __\(prefix)\($0)" }.joined(separator: ", "))) AS VARCHAR)"
        }
        var parts = [
            "SELECT \(keys), -1 AS __c, NULL AS col, \(whole("b")) AS b, \(whole("o")) AS o, NULL AS t, 'changed by ours, deleted by theirs' AS reason FROM __m_rows WHERE \(theirsDeletedOursChanged)",
            "SELECT \(keys), -1, NULL, \(whole("b")), NULL, \(whole("t")), 'deleted by ours, changed by theirs' FROM __m_rows WHERE \(oursDeletedTheirsChanged)",
        ]
        for (i, column) in columns.enumerated() where !key.contains(column.name) {
            parts.append(
                "SELECT \(keys), \(i), \(quoteLiteral(column.name)), CASE WHEN __in_base THEN CAST(__b\(i) AS VARCHAR) END, CAST(__o\(i) AS VARCHAR), CAST(__t\(i) AS VARCHAR), CASE WHEN __in_base THEN 'changed on both sides' ELSE 'inserted on both sides' END FROM __m_rows WHERE \(cellConflict(i))"
            )
        }
        let conflictRows = try query(
            "SELECT \(keyText), col, b, o, t, reason, CAST(row(\(keys)) AS VARCHAR) FROM (\(parts.joined(separator: "\nUNION ALL "))) ORDER BY \(keys), __c")
        let conflicts = conflictRows.rows.map { row in
            MergeConflict(
                table: table, key: row[0].string, column: row[1].string, base: row[2].string, ours: row[3].string, theirs: row[4].string,
                reason: row[5].description)
        }
        let conflictKeys = conflictRows.rows.map { $0[6].description }
        if strategy == .fail && !conflicts.isEmpty { return (conflicts, conflictKeys) }

        // The merged row: per cell, the side that changed it (theirs when
        // only theirs did; a conflict goes to the strategy's side).
        let preferTheirs = strategy == .theirs ? "true" : "false"
        let mergedCells = columns.enumerated().map { i, column in
            "CASE WHEN NOT \(oursHas) OR (__in_base AND __o\(i) IS NOT DISTINCT FROM __b\(i)) THEN __t\(i) WHEN __in_base AND __t\(i) IS NOT DISTINCT FROM __b\(i) THEN __o\(i) WHEN \(preferTheirs) THEN __t\(i) ELSE __o\(i) END AS \(quoteIdentifier(column.name))"
        }
        let differs = columns.indices.map { "merged.\(quoteIdentifier(columns[$0].name)) IS DISTINCT FROM __m_rows.__o\($0)" }.joined(separator: " OR ")
        // Theirs has the row and the result keeps it: upsert where it differs from ours.
        let keepsTheirRow =
            "__in_theirs AND NOT (\(oursDeletedTheirsChanged) AND NOT \(preferTheirs))"
        try run(
            """
            CREATE TABLE __udr_up AS SELECT merged.* FROM __m_rows,
              LATERAL (SELECT \(mergedCells.joined(separator: ", "))) merged
            WHERE \(keepsTheirRow) AND (NOT \(oursHas) OR \(differs))
            """)
        // Theirs deleted the row: delete it from ours unless ours changed it and wins.
        try run(
            """
            CREATE TABLE __udr_del AS SELECT \(keys) FROM __m_rows
            WHERE __in_base AND NOT __in_theirs AND \(oursHas) AND NOT (\(theirsDeletedOursChanged) AND NOT \(preferTheirs))
            """)
        return (conflicts, conflictKeys)
    }

    private func run(_ sql: String) throws(UDRError) {
        do { try connection.execute(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
    }

    private func query(_ sql: String) throws(UDRError) -> ResultSet {
        do { return try connection.query(sql) } catch { throw UDRError(.query, error.message, underlying: error) }
    }
}

/// Commits and their parents, as the catalog records them (no object
/// reads), for walks over history.
struct CommitGraph {
    private let records: [ObjectID: CommitRecord]

    init(_ records: [CommitRecord]) {
        self.records = Dictionary(records.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// `id` and every commit it descends from, over all parents.
    func ancestors(of id: ObjectID) -> Set<ObjectID> {
        var ancestors: Set<ObjectID> = [id]
        var stack = [id]
        while let next = stack.popLast() {
            for parent in records[next]?.parents ?? [] where ancestors.insert(parent).inserted { stack.append(parent) }
        }
        return ancestors
    }

    /// The most recent (by transaction id) common ancestor of `a` and `b`,
    /// over all parents; nil when they share none. `ancestorsOfA` saves
    /// walking `a` again when it is known.
    func mergeBase(_ a: ObjectID, _ b: ObjectID, ancestorsOfA: Set<ObjectID>? = nil) -> ObjectID? {
        let ancestors = ancestorsOfA ?? self.ancestors(of: a)
        // From b, newest first: the first commit a also reaches.
        var frontier: [(Int64, ObjectID)] = [(records[b]?.txID ?? .max, b)]
        var seen: Set<ObjectID> = [b]
        while !frontier.isEmpty {
            frontier.sort { $0.0 < $1.0 }
            let (_, id) = frontier.removeLast()
            if ancestors.contains(id) { return id }
            for parent in records[id]?.parents ?? [] where seen.insert(parent).inserted {
                frontier.append((records[parent]?.txID ?? 0, parent))
            }
        }
        return nil
    }
}
