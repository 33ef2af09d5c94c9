import Foundation
import GRDB
import UDRCore

/// The embedded catalog: one SQLite file in the repository (WAL mode, busy
/// timeout), safe for many processes on one machine. Branch heads move by
/// compare-and-swap inside an immediate transaction.
public final class SQLiteCatalog: Catalog {
    let pool: DatabasePool

    /// Opens (and migrates) the catalog at `path`; `create` makes a new one.
    public init(path: String, create: Bool = false, busyTimeout: TimeInterval = 30) throws(UDRError) {
        if !create, !FileManager.default.fileExists(atPath: path) {
            throw UDRError(.notARepository, "the catalog \(path) does not exist; is this a UDR repository? Create one with `udr init`.")
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        // Checkpoint the write-ahead log every 64 pages (not 1,000) and
        // cut it back to 256 KB after: a process that stays open (a
        // server, the benchmark's driver) otherwise keeps a log of up to
        // 4 MB beside the catalog, which a copy of the repository uploads
        // again every time it changes.
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 64; PRAGMA journal_size_limit = 262144")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(pool)
            if create {
                try pool.write { db in
                    try db.execute(
                        sql: "INSERT OR IGNORE INTO meta(key, value) VALUES ('format', ?)",
                        arguments: [String(RepositoryLayout.formatVersion)])
                }
            }
        } catch {
            throw Self.wrap(error, "cannot open the catalog \(path)")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE tx_sequence(id INTEGER PRIMARY KEY AUTOINCREMENT, allocated TEXT NOT NULL);
                    CREATE TABLE refs(name TEXT PRIMARY KEY, kind TEXT NOT NULL, commit_id TEXT NOT NULL);
                    CREATE TABLE commits(
                        id TEXT PRIMARY KEY, tx_id INTEGER NOT NULL UNIQUE, time TEXT NOT NULL,
                        author TEXT NOT NULL, message TEXT NOT NULL, branch TEXT NOT NULL, parents TEXT NOT NULL);
                    CREATE TABLE table_versions(
                        table_name TEXT NOT NULL, version INTEGER NOT NULL, manifest TEXT NOT NULL,
                        commit_id TEXT NOT NULL, tx_id INTEGER NOT NULL, time TEXT NOT NULL, row_count INTEGER NOT NULL,
                        PRIMARY KEY (table_name, version));
                    CREATE INDEX commits_time ON commits(time);
                    """)
        }
        migrator.registerMigration("v2-transactions") { db in
            try db.execute(
                sql: """
                    CREATE TABLE transactions(
                        id TEXT PRIMARY KEY, branch TEXT NOT NULL, base TEXT, began TEXT NOT NULL, expires TEXT NOT NULL,
                        ttl REAL NOT NULL, state TEXT NOT NULL, commit_id TEXT);
                    CREATE TABLE staged(
                        tx TEXT NOT NULL, table_name TEXT NOT NULL, manifest TEXT NOT NULL, base TEXT, kind TEXT NOT NULL,
                        inserted INTEGER, deleted INTEGER, updated INTEGER, row_count INTEGER NOT NULL,
                        PRIMARY KEY (tx, table_name));
                    CREATE INDEX transactions_state ON transactions(state);
                    """)
        }
        migrator.registerMigration("v3-retention") { db in
            try db.execute(sql: "CREATE TABLE expired_commits(id TEXT PRIMARY KEY, tx_id INTEGER NOT NULL, expired_at TEXT NOT NULL)")
            try db.execute(sql: "CREATE TABLE branch_locks(branch TEXT PRIMARY KEY, holder TEXT NOT NULL, expires TEXT NOT NULL)")
        }
        migrator.registerMigration("v4-leases-counts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE write_leases(id TEXT PRIMARY KEY, base TEXT, began TEXT NOT NULL, expires TEXT NOT NULL);
                    CREATE TABLE row_counts(
                        old_manifest TEXT NOT NULL, new_manifest TEXT NOT NULL,
                        inserted INTEGER NOT NULL, deleted INTEGER NOT NULL, updated INTEGER NOT NULL,
                        PRIMARY KEY (old_manifest, new_manifest));
                    CREATE INDEX expired_commits_time ON expired_commits(expired_at);
                    """)
        }
        migrator.registerMigration("v5-renames") { db in
            try db.execute(sql: "ALTER TABLE staged ADD COLUMN renamed_from TEXT")
        }
        migrator.registerMigration("v6-remotes") { db in
            try db.execute(sql: "CREATE TABLE remote_refs(name TEXT PRIMARY KEY, commit_id TEXT NOT NULL)")
        }
        return migrator
    }

    static func wrap(_ error: any Error, _ context: String) -> UDRError {
        if let error = error as? UDRError { return error }
        return UDRError(.catalog, "\(context): \(error)", underlying: error as? DatabaseError)
    }

    private func read<T>(_ body: (GRDB.Database) throws -> T) throws(UDRError) -> T {
        do { return try pool.read(body) } catch { throw Self.wrap(error, "catalog read failed") }
    }

    private func write<T>(_ body: (GRDB.Database) throws -> T) throws(UDRError) -> T {
        do { return try pool.write(body) } catch { throw Self.wrap(error, "catalog write failed") }
    }

    public func formatVersion() throws(UDRError) -> Int {
        try read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'").flatMap(Int.init) ?? 0 }
    }

    public func allocateTxID() throws(UDRError) -> Int64 {
        try write { db in
            try db.execute(sql: "INSERT INTO tx_sequence(allocated) VALUES (?)", arguments: [Timestamp.format(Date())])
            return db.lastInsertedRowID
        }
    }

    /// The head commit id (hex) of a branch, inside a catalog transaction.
    private static func branchHead(_ db: GRDB.Database, _ branch: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT commit_id FROM refs WHERE name = ? AND kind = 'branch'", arguments: [branch])
    }

    public func head(of branch: String) throws(UDRError) -> ObjectID? {
        try read { db in
            try Self.branchHead(db, branch).map { try ObjectID(hex: $0) }
        }
    }

    public func recordCommit(
        _ commit: CommitRecord, tableVersions: [TableVersionRecord], branch: String, expectedHead: ObjectID?, closing transaction: String?
    ) throws(UDRError) {
        try write { db in
            if let transaction {
                let record = try Self.liveTransaction(db, transaction, now: commit.time)
                try db.execute(
                    sql: "UPDATE transactions SET state = 'committed', commit_id = ? WHERE id = ?", arguments: [commit.id.hex, record.id])
                try db.execute(sql: "DELETE FROM staged WHERE tx = ?", arguments: [record.id])
            }
            let latest = try Int64.fetchOne(db, sql: "SELECT max(tx_id) FROM commits") ?? 0
            guard commit.txID > latest else {
                throw UDRError(.conflict, "transaction id \(commit.txID) is older than the latest commit's \(latest)")
            }
            let current = try Self.branchHead(db, branch)
            guard current == expectedHead?.hex else {
                throw UDRError(
                    .conflict,
                    "branch \(branch) moved from \(expectedHead?.short ?? "(none)") to \(current.map { String($0.prefix(12)) } ?? "(none)")"
                )
            }
            let parents = commit.parents.map(\.hex).joined(separator: ",")
            try db.execute(
                sql: "INSERT INTO commits(id, tx_id, time, author, message, branch, parents) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [
                    commit.id.hex, commit.txID, Timestamp.format(commit.time), commit.author, commit.message, commit.branch, parents,
                ])
            for version in tableVersions {
                let exists =
                    try Bool.fetchOne(
                        db, sql: "SELECT 1 FROM table_versions WHERE table_name = ? AND version = ?",
                        arguments: [version.table.rawValue, version.version]) ?? false
                if exists {
                    throw UDRError(.conflict, "version \(version.version) of \(version.table) was committed concurrently")
                }
                try db.execute(
                    sql:
                        "INSERT INTO table_versions(table_name, version, manifest, commit_id, tx_id, time, row_count) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    arguments: [
                        version.table.rawValue, version.version, version.manifest.hex, version.commit.hex, version.txID,
                        Timestamp.format(version.time), version.rows,
                    ])
            }
            if try String.fetchOne(db, sql: "SELECT kind FROM refs WHERE name = ? AND kind <> 'branch'", arguments: [branch]) != nil {
                throw UDRError(.invalidArgument, "\(branch) is a tag, not a branch; commits go to branches")
            }
            try db.execute(
                sql:
                    "INSERT INTO refs(name, kind, commit_id) VALUES (?, 'branch', ?) ON CONFLICT(name) DO UPDATE SET commit_id = excluded.commit_id",
                arguments: [branch, commit.id.hex])
        }
    }

    public func moveBranch(_ branch: String, from expectedHead: ObjectID?, to commit: ObjectID) throws(UDRError) {
        try write { db in
            let current = try Self.branchHead(db, branch)
            guard current == expectedHead?.hex else {
                throw UDRError(
                    .conflict,
                    "branch \(branch) moved from \(expectedHead?.short ?? "(none)") to \(current.map { String($0.prefix(12)) } ?? "(none)")")
            }
            if try String.fetchOne(db, sql: "SELECT kind FROM refs WHERE name = ? AND kind <> 'branch'", arguments: [branch]) != nil {
                throw UDRError(.invalidArgument, "\(branch) is a tag, not a branch; merges go into branches")
            }
            try db.execute(
                sql:
                    "INSERT INTO refs(name, kind, commit_id) VALUES (?, 'branch', ?) ON CONFLICT(name) DO UPDATE SET commit_id = excluded.commit_id",
                arguments: [branch, commit.hex])
        }
    }

    // MARK: Refs

    public func createRef(_ name: String, kind: RefKind, commit: ObjectID) throws(UDRError) {
        try write { db in
            if let existing = try String.fetchOne(db, sql: "SELECT kind FROM refs WHERE name = ?", arguments: [name]) {
                throw UDRError(.conflict, "a \(existing) named '\(name)' already exists")
            }
            try db.execute(
                sql: "INSERT INTO refs(name, kind, commit_id) VALUES (?, ?, ?)", arguments: [name, kind.rawValue, commit.hex])
        }
    }

    public func deleteRef(_ name: String, kind: RefKind) throws(UDRError) -> ObjectID? {
        try write { db in
            let commit = try String.fetchOne(
                db, sql: "SELECT commit_id FROM refs WHERE name = ? AND kind = ?", arguments: [name, kind.rawValue])
            try db.execute(sql: "DELETE FROM refs WHERE name = ? AND kind = ?", arguments: [name, kind.rawValue])
            return try commit.map { try ObjectID(hex: $0) }
        }
    }

    public func setting(_ key: String) throws(UDRError) -> String? {
        try read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: ["setting." + key]) }
    }

    public func setSetting(_ key: String, to value: String) throws(UDRError) {
        try write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: ["setting." + key, value])
        }
    }

    public func latestTxID() throws(UDRError) -> Int64 {
        try read { db in try Int64.fetchOne(db, sql: "SELECT max(tx_id) FROM commits") ?? 0 }
    }

    // MARK: Transactions

    private static func transactionRecord(_ row: Row) throws -> TransactionRecord {
        let base: String? = row["base"]
        let commit: String? = row["commit_id"]
        return TransactionRecord(
            id: row["id"], branch: row["branch"], base: try base.map { try ObjectID(hex: $0) },
            began: Timestamp.parse(row["began"]) ?? Date(timeIntervalSince1970: 0), timeToLive: row["ttl"],
            state: TransactionRecord.State(rawValue: row["state"]) ?? .aborted, commit: try commit.map { try ObjectID(hex: $0) },
            expires: Timestamp.parse(row["expires"]) ?? Date(timeIntervalSince1970: 0))
    }

    /// The transaction, which must exist and be live.
    private static func liveTransaction(_ db: GRDB.Database, _ id: String, now: Date) throws -> TransactionRecord {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM transactions WHERE id = ?", arguments: [id]) else {
            throw UDRError(.transaction, "there is no transaction \(id); `udr tx list` shows the open ones")
        }
        let record = try transactionRecord(row)
        if let reason = record.closedReason(at: now) { throw UDRError(.transaction, reason) }
        return record
    }

    public func beginTransaction(_ record: TransactionRecord) throws(UDRError) {
        try write { db in
            let head = try Self.branchHead(db, record.branch)
            guard head == record.base?.hex else {
                throw UDRError(.conflict, "branch \(record.branch) moved while the transaction began")
            }
            try db.execute(
                sql: "INSERT INTO transactions(id, branch, base, began, expires, ttl, state) VALUES (?, ?, ?, ?, ?, ?, 'open')",
                arguments: [
                    record.id, record.branch, record.base?.hex, Timestamp.format(record.began), Timestamp.format(record.expires),
                    record.timeToLive,
                ])
        }
    }

    public func transaction(_ id: String) throws(UDRError) -> TransactionRecord? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM transactions WHERE id = ?", arguments: [id]).map(Self.transactionRecord)
        }
    }

    public func openTransactions() throws(UDRError) -> [TransactionRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM transactions WHERE state = 'open' ORDER BY began").map(Self.transactionRecord)
        }
    }

    public func stage(_ table: StagedTable, in transaction: String, replacing: ObjectID?, writeBegan: Date, now: Date) throws(UDRError) {
        try write { db in
            let record = try Self.liveTransaction(db, transaction, now: writeBegan)
            let current = try String.fetchOne(
                db, sql: "SELECT manifest FROM staged WHERE tx = ? AND table_name = ?", arguments: [transaction, table.table.rawValue])
            guard current == replacing?.hex else {
                throw UDRError(
                    .conflict,
                    "\(table.table) was staged in transaction \(transaction) by another writer meanwhile; nothing was staged. Retry the write."
                )
            }
            try db.execute(
                sql: """
                    INSERT INTO staged(tx, table_name, manifest, base, kind, inserted, deleted, updated, row_count, renamed_from)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(tx, table_name) DO UPDATE SET manifest = excluded.manifest, kind = excluded.kind,
                        inserted = excluded.inserted, deleted = excluded.deleted, updated = excluded.updated, row_count = excluded.row_count,
                        renamed_from = excluded.renamed_from
                    """,
                arguments: [
                    transaction, table.table.rawValue, table.manifest.hex, table.base?.hex, table.kind.rawValue, table.counts?.inserted,
                    table.counts?.deleted, table.counts?.updated, table.rows, table.renamedFrom?.rawValue,
                ])
            try db.execute(
                sql: "UPDATE transactions SET expires = ? WHERE id = ?",
                arguments: [Timestamp.format(now.addingTimeInterval(record.timeToLive)), transaction])
        }
    }

    public func stagedTables(in transaction: String) throws(UDRError) -> [StagedTable] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM staged WHERE tx = ? ORDER BY table_name", arguments: [transaction]).map { row in
                let base: String? = row["base"]
                let inserted: Int64? = row["inserted"]
                let counts = inserted.map { RowCounts(inserted: $0, deleted: row["deleted"], updated: row["updated"]) }
                let renamedFrom: String? = row["renamed_from"]
                return StagedTable(
                    table: try TableName(row["table_name"]), manifest: try ObjectID(hex: row["manifest"]),
                    base: try base.map { try ObjectID(hex: $0) }, kind: ChangeKind(rawValue: row["kind"]) ?? .replace, counts: counts,
                    rows: row["row_count"], renamedFrom: try renamedFrom.map { try TableName($0) })
            }
        }
    }

    public func abortTransaction(_ id: String) throws(UDRError) {
        try write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM transactions WHERE id = ?", arguments: [id]) else {
                throw UDRError(.transaction, "there is no transaction \(id); `udr tx list` shows the open ones")
            }
            let record = try Self.transactionRecord(row)
            if record.state == .committed {
                throw UDRError(.transaction, "transaction \(id) is already committed; it cannot be aborted")
            }
            try db.execute(sql: "UPDATE transactions SET state = 'aborted' WHERE id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM staged WHERE tx = ?", arguments: [id])
        }
    }

    public func closeEmptyTransaction(_ id: String, now: Date) throws(UDRError) {
        try write { db in
            _ = try Self.liveTransaction(db, id, now: now)
            try db.execute(sql: "UPDATE transactions SET state = 'committed' WHERE id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM staged WHERE tx = ?", arguments: [id])
        }
    }

    private static func commitRecord(_ row: Row) throws -> CommitRecord {
        let parents: String = row["parents"]
        return CommitRecord(
            id: try ObjectID(hex: row["id"]), txID: row["tx_id"], time: Timestamp.parse(row["time"]) ?? Date(timeIntervalSince1970: 0),
            author: row["author"], message: row["message"], branch: row["branch"],
            parents: try parents.split(separator: ",").map { try ObjectID(hex: String($0)) })
    }

    private static func versionRecord(_ row: Row) throws -> TableVersionRecord {
        TableVersionRecord(
            table: try TableName(row["table_name"]), version: row["version"], manifest: try ObjectID(hex: row["manifest"]),
            commit: try ObjectID(hex: row["commit_id"]), txID: row["tx_id"],
            time: Timestamp.parse(row["time"]) ?? Date(timeIntervalSince1970: 0),
            rows: row["row_count"])
    }

    public func commitRecord(_ id: ObjectID) throws(UDRError) -> CommitRecord? {
        try read { db in try Row.fetchOne(db, sql: "SELECT * FROM commits WHERE id = ?", arguments: [id.hex]).map(Self.commitRecord) }
    }

    public func commitRecords(idPrefix: String) throws(UDRError) -> [CommitRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM commits WHERE id >= ? AND id < ? LIMIT 10", arguments: [idPrefix, idPrefix + "g"]).map(
                Self.commitRecord)
        }
    }

    public func commitRecord(txID: Int64) throws(UDRError) -> CommitRecord? {
        try read { db in try Row.fetchOne(db, sql: "SELECT * FROM commits WHERE tx_id = ?", arguments: [txID]).map(Self.commitRecord) }
    }

    public func allCommitRecords() throws(UDRError) -> [CommitRecord] {
        try read { db in try Row.fetchAll(db, sql: "SELECT * FROM commits ORDER BY tx_id").map(Self.commitRecord) }
    }

    public func tableVersions(_ table: TableName) throws(UDRError) -> [TableVersionRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM table_versions WHERE table_name = ? ORDER BY version", arguments: [table.rawValue])
                .map(Self.versionRecord)
        }
    }

    public func latestVersionNumber(_ table: TableName) throws(UDRError) -> Int {
        try read { db in
            try Int.fetchOne(db, sql: "SELECT max(version) FROM table_versions WHERE table_name = ?", arguments: [table.rawValue]) ?? 0
        }
    }

    public func tags() throws(UDRError) -> [String: ObjectID] {
        try read { db in
            var out: [String: ObjectID] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, commit_id FROM refs WHERE kind = 'tag'") {
                out[row["name"]] = try ObjectID(hex: row["commit_id"])
            }
            return out
        }
    }

    public func tag(_ name: String) throws(UDRError) -> ObjectID? {
        try read { db in
            try String.fetchOne(db, sql: "SELECT commit_id FROM refs WHERE name = ? AND kind = 'tag'", arguments: [name]).map {
                try ObjectID(hex: $0)
            }
        }
    }

    public func expire(commits: [ObjectID], tableVersions: [TableVersionKey], at time: Date) throws(UDRError) {
        try write { db in
            for id in commits {
                if let ref = try String.fetchOne(db, sql: "SELECT name FROM refs WHERE commit_id = ?", arguments: [id.hex]) {
                    throw UDRError(
                        .conflict, "\(ref) moved to commit \(id.short) while history was being expired; nothing was expired. Retry.")
                }
                let txID = try Int64.fetchOne(db, sql: "SELECT tx_id FROM commits WHERE id = ?", arguments: [id.hex]) ?? 0
                try db.execute(sql: "DELETE FROM commits WHERE id = ?", arguments: [id.hex])
                try db.execute(
                    sql: "INSERT OR IGNORE INTO expired_commits(id, tx_id, expired_at) VALUES (?, ?, ?)",
                    arguments: [id.hex, txID, Timestamp.format(time)])
            }
            for key in tableVersions {
                try db.execute(
                    sql: "DELETE FROM table_versions WHERE table_name = ? AND version = ?", arguments: [key.table.rawValue, key.version])
            }
        }
    }

    public func lockBranch(_ branch: String, holder: String, expires: Date, replacingStale stale: String?) throws(UDRError) -> String? {
        try write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT holder, expires FROM branch_locks WHERE branch = ?", arguments: [branch]) {
                let current: String = row["holder"]
                let until = Timestamp.parse(row["expires"]) ?? .distantPast
                if current != holder, current != stale, until > Date() { return current }
            }
            try db.execute(
                sql:
                    "INSERT INTO branch_locks(branch, holder, expires) VALUES (?, ?, ?) ON CONFLICT(branch) DO UPDATE SET holder = excluded.holder, expires = excluded.expires",
                arguments: [branch, holder, Timestamp.format(expires)])
            return nil
        }
    }

    public func unlockBranch(_ branch: String, holder: String) throws(UDRError) {
        try write { db in
            try db.execute(sql: "DELETE FROM branch_locks WHERE branch = ? AND holder = ?", arguments: [branch, holder])
        }
    }

    public func isExpired(_ commit: ObjectID) throws(UDRError) -> Bool {
        try read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM expired_commits WHERE id = ?", arguments: [commit.hex]) ?? false }
    }

    public func branches() throws(UDRError) -> [String: ObjectID] {
        try read { db in
            var out: [String: ObjectID] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, commit_id FROM refs WHERE kind = 'branch'") {
                out[row["name"]] = try ObjectID(hex: row["commit_id"])
            }
            return out
        }
    }

    public func expiredCommits(since time: Date) throws(UDRError) -> [ObjectID] {
        try read { db in
            try String.fetchAll(db, sql: "SELECT id FROM expired_commits WHERE expired_at >= ?", arguments: [Timestamp.format(time)]).map {
                try ObjectID(hex: $0)
            }
        }
    }

    // MARK: Remotes

    public func remoteRefs() throws(UDRError) -> [String: ObjectID] {
        try read { db in
            var out: [String: ObjectID] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, commit_id FROM remote_refs") {
                out[row["name"]] = try ObjectID(hex: row["commit_id"])
            }
            return out
        }
    }

    public func importCommits(_ commits: [CommitRecord], tableVersions: [TableVersionRecord], remoteRefs: [String: ObjectID?]) throws(UDRError) {
        try write { db in
            var assigned: [ObjectID: Int64] = [:]
            for commit in commits {
                if try Bool.fetchOne(db, sql: "SELECT 1 FROM commits WHERE id = ?", arguments: [commit.id.hex]) == true { continue }
                let latest = max(
                    try Int64.fetchOne(db, sql: "SELECT max(tx_id) FROM commits") ?? 0,
                    try Int64.fetchOne(db, sql: "SELECT max(id) FROM tx_sequence") ?? 0)
                let txID = commit.txID > latest ? commit.txID : latest + 1
                try db.execute(
                    sql: "INSERT INTO tx_sequence(id, allocated) VALUES (?, ?)", arguments: [txID, Timestamp.format(Date())])
                try db.execute(
                    sql: "INSERT INTO commits(id, tx_id, time, author, message, branch, parents) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    arguments: [
                        commit.id.hex, txID, Timestamp.format(commit.time), commit.author, commit.message, commit.branch,
                        commit.parents.map(\.hex).joined(separator: ","),
                    ])
                // A commit expired here and fetched again is history again.
                try db.execute(sql: "DELETE FROM expired_commits WHERE id = ?", arguments: [commit.id.hex])
                assigned[commit.id] = txID
            }
            for version in tableVersions {
                guard let txID = assigned[version.commit] else { continue }
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO table_versions(table_name, version, manifest, commit_id, tx_id, time, row_count)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        version.table.rawValue, version.version, version.manifest.hex, version.commit.hex, txID, Timestamp.format(version.time),
                        version.rows,
                    ])
            }
            for (name, commit) in remoteRefs {
                if let commit {
                    try db.execute(
                        sql: "INSERT INTO remote_refs(name, commit_id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET commit_id = excluded.commit_id",
                        arguments: [name, commit.hex])
                } else {
                    try db.execute(sql: "DELETE FROM remote_refs WHERE name = ?", arguments: [name])
                }
            }
        }
    }

    // MARK: Write leases

    public func beginLease(id: String, branch: String, began: Date, expires: Date) throws(UDRError) -> ObjectID? {
        try write { db in
            let head = try Self.branchHead(db, branch)
            try db.execute(
                sql: "INSERT INTO write_leases(id, base, began, expires) VALUES (?, ?, ?, ?)",
                arguments: [id, head, Timestamp.format(began), Timestamp.format(expires)])
            return try head.map { try ObjectID(hex: $0) }
        }
    }

    public func endLease(_ id: String) throws(UDRError) {
        try write { db in try db.execute(sql: "DELETE FROM write_leases WHERE id = ?", arguments: [id]) }
    }

    public func leases() throws(UDRError) -> [WriteLease] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM write_leases ORDER BY began").map { row in
                WriteLease(
                    id: row["id"], base: try (row["base"] as String?).map { try ObjectID(hex: $0) },
                    began: Timestamp.parse(row["began"]) ?? .distantPast, expires: Timestamp.parse(row["expires"]) ?? .distantPast)
            }
        }
    }

    // MARK: Derived data

    public func rowCounts(from old: ObjectID?, to new: ObjectID?) throws(UDRError) -> RowCounts? {
        try read { db in
            try Row.fetchOne(
                db, sql: "SELECT inserted, deleted, updated FROM row_counts WHERE old_manifest = ? AND new_manifest = ?",
                arguments: [old?.hex ?? "", new?.hex ?? ""]
            ).map { RowCounts(inserted: $0["inserted"], deleted: $0["deleted"], updated: $0["updated"]) }
        }
    }

    public func recordRowCounts(_ counts: RowCounts, from old: ObjectID?, to new: ObjectID?) throws(UDRError) {
        try write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO row_counts(old_manifest, new_manifest, inserted, deleted, updated) VALUES (?, ?, ?, ?, ?)",
                arguments: [old?.hex ?? "", new?.hex ?? "", counts.inserted, counts.deleted, counts.updated])
        }
    }
}
