import ArgumentParser
import Foundation
import UDRCore

struct Changes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What changed, commit by commit: each table's old and new version and the rows inserted, deleted and updated.")

    @OptionGroup var repo: RepositoryOptions
    @Option(help: "Only commits after this transaction id.") var since: Int64?
    @Option(help: "Only changes to this table.") var table: String?
    @Option(help: "The branch.") var branch: String?
    @Option(help: "At most this many commits (the first after --since, else the latest).") var limit: Int?
    @Flag(help: "Print only the latest transaction id.") var latest = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let repository = try repo.open()
        if latest {
            let tx = try await repository.latestTxID(branch: branch)
            print(json ? Output.json(["latest": tx]) : tx.map(String.init) ?? "0")
            return
        }
        if let limit, limit < 1 { throw UDRError(.invalidArgument, "--limit must be at least 1") }
        let entries = try await repository.changes(since: since, table: try table.map { try TableName($0) }, branch: branch, limit: limit)
        if json {
            print(Output.json(entries))
            return
        }
        var rows: [[String]] = []
        for entry in entries {
            for change in entry.tables {
                let (from, to) = Output.versions(change.oldVersion, change.newVersion)
                rows.append([
                    String(entry.txID), Timestamp.format(entry.time), change.table.rawValue, from, to,
                    String(change.inserted), String(change.deleted), String(change.updated), entry.message,
                ])
            }
        }
        print(Output.table(headers: ["tx", "time", "table", "from", "to", "inserted", "deleted", "updated", "message"], rows: rows))
    }
}

struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete objects nothing retained reaches (no ref, kept commit or live transaction), once older than the grace period.")

    @OptionGroup var repo: RepositoryOptions
    @Option(help: "Spare unreachable objects younger than this (e.g. 1h, 10m, 0s).") var grace: String = "1h"
    @Flag(name: .customLong("dry-run"), help: "Report what would be deleted; delete nothing.") var dryRun = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let report = try await repo.open().gc(grace: try DurationText.parse(grace), dryRun: dryRun)
        if json {
            print(Output.json(report))
            return
        }
        print(
            "\(dryRun ? "would free" : "freed") \(Output.bytes(report.bytesFreed)) (\(report.bytesFreed) bytes) in \(report.objectsDeleted) objects; \(report.objectsReachable) reachable objects kept"
        )
        if report.transactionsClosed > 0 {
            print("\(dryRun ? "would close" : "closed") \(report.transactionsClosed) expired transaction(s)")
        }
        if report.abandonedBytesFreed > 0 {
            print(
                "\(dryRun ? "would remove" : "removed") \(Output.bytes(report.abandonedBytesFreed)) of temporary files interrupted writes left behind"
            )
        }
        if report.objectsWaiting > 0 {
            print(
                "\(report.objectsWaiting) unreachable objects (\(Output.bytes(report.bytesWaiting))) are younger than the grace period or wait for writers that were running to end; a later gc frees them"
            )
        }
    }
}

struct Expire: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drop old history (except tagged commits); `udr gc` then frees what only it used.")

    @OptionGroup var repo: RepositoryOptions
    @Option(name: .customLong("keep-last"), help: "Keep the latest N commits of each branch.") var keepLast: Int?
    @Option(name: .customLong("older-than"), help: "Drop commits older than this (e.g. 30d); each branch keeps its head.") var olderThan:
        String?
    @Flag(name: .customLong("dry-run"), help: "Report what would be dropped; drop nothing.") var dryRun = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let retention: Retention
        switch (keepLast, olderThan) {
        case (let n?, nil): retention = .keepLast(n)
        case (nil, let age?): retention = .olderThan(try DurationText.parse(age))
        default: throw UDRError(.invalidArgument, "give either --keep-last N or --older-than DURATION")
        }
        let report = try await repo.open().expire(retention, dryRun: dryRun)
        if json {
            print(Output.json(report))
        } else {
            print(
                "\(dryRun ? "would expire" : "expired") \(report.commitsExpired) commits and \(report.tableVersionsExpired) table versions; \(report.commitsKept) commits kept"
            )
        }
    }
}
