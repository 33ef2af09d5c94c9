import DuckDB
import Foundation

/// What one statement of a SQL script did.
public struct SQLStatementResult: Sendable {
    public enum Kind: String, Sendable, Codable {
        /// A query, or a statement of the session (SET, LOAD …): nothing committed.
        case read
        /// Rows of a table inserted, updated or deleted.
        case rows
        /// A table created (or replaced).
        case create
        /// A table dropped.
        case drop
        /// A table's columns changed.
        case alter
        /// BEGIN, COMMIT or ROLLBACK.
        case transaction
    }
    /// The statement's text.
    public let statement: String
    public let kind: Kind
    /// The table it wrote, if any.
    public let table: TableName?
    /// What it staged (nil for a statement that writes nothing).
    public let write: StagedWrite?
    /// A query's rows, or what a write's RETURNING clause returned.
    public let rows: ResultSet?
    /// The commit it made or ended with (a statement outside BEGIN … COMMIT, or COMMIT).
    public let commit: CommitRecord?
}

/// What a SQL script did, statement by statement.
public struct SQLResult: Sendable {
    public let statements: [SQLStatementResult]
    /// The commits it made, in order.
    public var commits: [CommitRecord] { statements.compactMap(\.commit) }
}

extension Repository {
    /// Runs DuckDB SQL over the repository. Each statement that writes
    /// (INSERT, UPDATE, DELETE, MERGE INTO, CREATE TABLE) is a commit on
    /// `branch` of its own, unless the script groups statements with
    /// `BEGIN; …; COMMIT;` (one commit; ROLLBACK discards them) or
    /// `atomic` makes the whole script one commit. A failing statement
    /// commits nothing of its own group; the error says which statements
    /// of the script had committed before it. Queries return their rows.
    public func sql(
        _ script: String, branch: String? = nil, atomic: Bool = false, message: String? = nil, author: String? = nil
    ) async throws(UDRError) -> SQLResult {
        let parsed = try SQLScript(script)
        return try await blocking { () throws(UDRError) -> SQLResult in
            var runner = SQLRunner(repository: self, branch: branch, message: message, author: author, staging: nil, atomic: atomic)
            return try runner.run(parsed)
        }
    }
}

extension Transaction {
    /// Runs DuckDB SQL in the transaction: every write is staged in it
    /// (see ``Repository/sql(_:branch:atomic:message:author:)``); the
    /// script cannot BEGIN, COMMIT or ROLLBACK.
    public func sql(_ script: String) async throws(UDRError) -> SQLResult {
        let parsed = try SQLScript(script)
        let asked = Date()
        return try await repository.blocking { () throws(UDRError) -> SQLResult in
            try self.checkLive(at: asked)
            var runner = SQLRunner(repository: self.repository, branch: nil, message: nil, author: nil, staging: self, atomic: false)
            return try runner.run(parsed)
        }
    }
}

/// Runs a script's statements on one DuckDB connection (so that SET, LOAD
/// and temporary tables last for the script), each against the tables as
/// its transaction sees them.
struct SQLRunner {
    let repository: Repository
    let branch: String?
    let message: String?
    let author: String?
    /// The open transaction every write stages in (`--tx`).
    let staging: Transaction?
    let atomic: Bool

    /// The private transaction of a `BEGIN … COMMIT` group or of an atomic script.
    private var group: (tx: Transaction, lease: String)?
    private var results: [SQLStatementResult] = []

    init(repository: Repository, branch: String?, message: String?, author: String?, staging: Transaction?, atomic: Bool) {
        self.repository = repository
        self.branch = branch
        self.message = message
        self.author = author
        self.staging = staging
        self.atomic = atomic
    }

    mutating func run(_ script: SQLScript) throws(UDRError) -> SQLResult {
        let statements = script.statements
        defer { endGroup() }
        try repository.withDuckDB { (connection) throws(UDRError) in
            if atomic { try beginGroup() }
            for (index, statement) in statements.enumerated() {
                do throws(UDRError) {
                    try run(statement, on: connection)
                } catch {
                    throw failure(error, at: index, of: statements)
                }
            }
            if group != nil && !atomic {
                throw UDRError(
                    .transaction, "the script ends inside BEGIN without COMMIT or ROLLBACK: nothing since BEGIN was committed; end it with COMMIT")
            }
            if atomic, let (tx, _) = group {
                let record = try repository.commit(tx, message: message ?? defaultMessage, author: author)
                endGroup()
                if let record, let last = results.indices.last {
                    let r = results[last]
                    results[last] = SQLStatementResult(
                        statement: r.statement, kind: r.kind, table: r.table, write: r.write, rows: r.rows, commit: record)
                }
            }
        }
        return SQLResult(statements: results)
    }

    private var defaultMessage: String {
        let tables = Set(results.compactMap(\.table)).map(\.rawValue).sorted()
        return "sql: " + (tables.isEmpty ? "no table" : tables.joined(separator: ", "))
    }

    /// The error of statement `index`, saying what of the script was committed.
    private func failure(_ error: UDRError, at index: Int, of statements: [SQLStatement]) -> UDRError {
        guard statements.count > 1 else { return error }
        let text = statements[index].text
        let shown = text.count > 60 ? String(text.prefix(57)) + "…" : text
        let committed = results.compactMap(\.commit)
        var message = "statement \(index + 1) of \(statements.count) (`\(shown)`) failed: \(error.message)."
        if staging != nil {
            message += " Nothing of this script stays staged in the transaction after statement \(index)."
        } else if committed.isEmpty {
            message += " Nothing was committed."
        } else {
            message +=
                " Statements before it had committed \(committed.count) commit(s) (tx \(committed.map { String($0.txID) }.joined(separator: ", "))); nothing after them was. Use --atomic to commit all or nothing."
        }
        return UDRError(error.code, message, underlying: error.underlying)
    }

    private mutating func beginGroup() throws(UDRError) {
        group = try repository.autocommitTransaction(on: branch)
    }

    private mutating func endGroup() {
        if let (_, lease) = group { try? repository.catalog.endLease(lease) }
        group = nil
    }

    private mutating func run(_ statement: SQLStatement, on connection: Connection) throws(UDRError) {
        let verb = statement.verb
        switch verb {
        case "BEGIN", "START":
            if staging != nil { throw UDRError(.transaction, "the script runs in transaction \(staging!.id) already: drop its BEGIN") }
            if atomic { throw UDRError(.transaction, "--atomic makes the script one transaction already: drop its BEGIN, COMMIT and ROLLBACK") }
            if group != nil { throw UDRError(.transaction, "BEGIN inside BEGIN: transactions do not nest; COMMIT the first one") }
            try beginGroup()
            results.append(SQLStatementResult(statement: statement.text, kind: .transaction, table: nil, write: nil, rows: nil, commit: nil))
        case "COMMIT", "END", "ROLLBACK", "ABORT":
            guard let (tx, _) = group, !atomic else {
                throw UDRError(.transaction, "\(verb) without BEGIN: each statement outside BEGIN … COMMIT commits on its own")
            }
            var record: CommitRecord?
            if verb == "COMMIT" || verb == "END" { record = try repository.commit(tx, message: message ?? defaultMessage, author: author) }
            endGroup()
            results.append(
                SQLStatementResult(statement: statement.text, kind: .transaction, table: nil, write: nil, rows: nil, commit: record))
        case "SET", "RESET", "LOAD", "INSTALL", "FORCE", "ATTACH", "DETACH", "USE":
            // The session's own state, for the statements after it.
            do throws(DuckDBError) { try connection.execute(statement.text) } catch {
                throw UDRError(.query, error.message, underlying: error)
            }
            results.append(SQLStatementResult(statement: statement.text, kind: .read, table: nil, write: nil, rows: nil, commit: nil))
        default:
            let repository = self.repository
            if let write = try SQLWrite(statement) {
                try perform(statement, kind: .rows) { (tx) throws(UDRError) in
                    try repository.stageSQLWrite(write, in: tx, connection: connection)
                }
            } else if let create = try SQLCreateTable(statement), !create.temporary {
                try perform(statement, kind: .create) { (tx) throws(UDRError) in
                    try repository.stageCreate(create, in: tx, connection: connection)
                }
            } else if let drop = try SQLDropTable(statement) {
                try perform(statement, kind: .drop) { (tx) throws(UDRError) -> (TableName, StagedWrite, ResultSet?)? in
                    var last: (TableName, StagedWrite, ResultSet?)?
                    for name in drop.names {
                        let table: TableName
                        do throws(UDRError) { table = try tx.resolveTable(name, for: "drop") } catch {
                            if drop.ifExists { continue }
                            throw error
                        }
                        if let staged = try repository.stageDrop(table, ifExists: drop.ifExists, in: tx) { last = (table, staged, nil) }
                    }
                    return last
                }
            } else if let schema = try SQLSchema(statement) {
                try perform(statement, kind: schema.create ? .create : .drop) { (tx) throws(UDRError) -> (TableName, StagedWrite, ResultSet?)? in
                    let tables = try tx.tableNames().filter { $0.namespace?.lowercased() == schema.name.lowercased() }.sorted()
                    if schema.create {
                        // A namespace exists with its tables: there is nothing to record.
                        if !tables.isEmpty && !schema.guarded {
                            throw UDRError(.alreadyExists, "the schema \(schema.name) exists already (it holds \(tables.count) table(s))")
                        }
                        return nil
                    }
                    if tables.isEmpty {
                        if schema.guarded { return nil }
                        throw UDRError(.notFound, "there is no schema \(schema.name): no table is named \(schema.name).…")
                    }
                    guard schema.cascade else {
                        throw UDRError(
                            .invalidArgument,
                            "the schema \(schema.name) holds \(tables.count) table(s) (\(tables.prefix(5).map(\.rawValue).joined(separator: ", "))); DROP SCHEMA \(schema.name) CASCADE drops them"
                        )
                    }
                    var last: (TableName, StagedWrite, ResultSet?)?
                    for table in tables {
                        if let staged = try repository.stageDrop(table, ifExists: false, in: tx) { last = (table, staged, nil) }
                    }
                    return last
                }
            } else if let alter = try SQLAlterTable(statement) {
                try perform(statement, kind: .alter) { (tx) throws(UDRError) -> (TableName, StagedWrite, ResultSet?)? in
                    let table: TableName
                    do throws(UDRError) { table = try tx.resolveTable(alter.name, for: "alter") } catch {
                        if alter.ifExists { return nil }
                        throw error
                    }
                    switch alter.action {
                    case .column(let change):
                        return (table, try repository.stageAlter(table, change, in: tx), nil)
                    case .columnIf(let change, let exists):
                        let columns = try tx.current(table).manifest?.columns.map { $0.name.lowercased() } ?? []
                        let name: String
                        switch change {
                        case .addColumn(let n, _, _), .dropColumn(let n), .renameColumn(let n, _), .changeType(let n, _, _): name = n
                        }
                        guard columns.contains(name.lowercased()) == exists else { return nil }
                        return (table, try repository.stageAlter(table, change, in: tx), nil)
                    case .rename(let parts):
                        // A name without a namespace stays in the table's.
                        let text = parts.count == 1 ? (table.namespace.map { $0 + "." } ?? "") + parts[0] : parts.joined(separator: ".")
                        let name = try TableName(text)
                        return (name, try repository.stageRename(table, to: name, in: tx), nil)
                    }
                }
            } else if statement.notAReadBecause != nil && !Self.sessionObject(statement) {
                throw UDRError(
                    .invalidArgument,
                    "`udr sql` does not run \(verb) yet: it runs queries, INSERT, UPDATE, DELETE, MERGE INTO, CREATE TABLE (with AS SELECT, or columns and a PRIMARY KEY), DROP TABLE and ALTER TABLE"
                )
            } else {
                let rows = try read(statement, on: connection)
                results.append(SQLStatementResult(statement: statement.text, kind: .read, table: nil, write: nil, rows: rows, commit: nil))
            }
        }
    }

    /// Whether a statement makes an object of the session only (a
    /// temporary table or view, a macro), which no commit keeps.
    private static func sessionObject(_ statement: SQLStatement) -> Bool {
        guard statement.verb == "CREATE" else { return false }
        let words = statement.words(after: statement.verbIndex, count: 4)
        return words.contains("TEMP") || words.contains("TEMPORARY") || words.contains("MACRO")
            || (words.contains("FUNCTION") && !words.contains("TABLE"))
    }

    /// Runs a write in the group's transaction, the script's, or one of its own that commits at once.
    private mutating func perform(
        _ statement: SQLStatement, kind: SQLStatementResult.Kind, _ body: (Transaction) throws(UDRError) -> (TableName, StagedWrite, ResultSet?)?
    ) throws(UDRError) {
        if let tx = staging ?? group?.tx {
            let done = try body(tx)
            results.append(
                SQLStatementResult(statement: statement.text, kind: kind, table: done?.0, write: done?.1, rows: done?.2, commit: nil))
            return
        }
        let (tx, lease) = try repository.autocommitTransaction(on: branch)
        defer { try? repository.catalog.endLease(lease) }
        guard let (table, staged, rows) = try body(tx) else {
            results.append(SQLStatementResult(statement: statement.text, kind: kind, table: nil, write: nil, rows: nil, commit: nil))
            return
        }
        let text = statement.text
        let record = try repository.commit(tx, message: message ?? (text.count > 72 ? String(text.prefix(71)) + "…" : text), author: author)
        results.append(SQLStatementResult(statement: text, kind: kind, table: table, write: staged, rows: rows, commit: record))
    }

    /// Runs a statement that writes nothing over the tables its transaction sees (or the branch head).
    private func read(_ statement: SQLStatement, on connection: Connection) throws(UDRError) -> ResultSet {
        let text = statement.text
        let snapshot: ResolvedSnapshot
        if let tx = staging ?? group?.tx {
            snapshot = try tx.snapshot(for: text)
        } else {
            snapshot = try repository.snapshot(at: try repository.branchHead(branch).head, pins: [], for: text)
        }
        try repository.attach(snapshot, to: connection, for: text)
        do throws(DuckDBError) { return try connection.query(text) } catch {
            throw UDRError(.query, error.message, underlying: error)
        }
    }
}
