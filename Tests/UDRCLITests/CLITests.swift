import DuckDB
import Foundation
import Testing
import UDRCore
import UDRTesting

/// A repository driven through the `udr` executable, as a user would.
struct CLIRepository {
    let dir = TemporaryDirectory("cli")
    var root: URL { dir.url.appendingPathComponent("repo") }

    init() throws {
        let result = try udr(["init", root.path], in: dir.url)
        #expect(result.status == 0, "\(result.stderr)")
    }

    @discardableResult
    func run(_ args: String...) throws -> CommandResult { try run(args) }

    @discardableResult
    func run(_ args: [String]) throws -> CommandResult { try udr(args, in: root) }

    /// Everything a failed command must leave as it was.
    func state() throws -> String {
        let log = try run("log", "--json").stdout
        let verify = try run("verify").stdout
        let objects = try FileManager.default.contentsOfDirectory(atPath: root.path + "/.udr/objects").sorted()
        return log + verify + objects.joined(separator: ",")
    }
}

@Suite struct CLITourTests {
    @Test func theFiveMinuteTour() throws {
        let repo = try CLIRepository()
        let db = try scratchDuckDB()
        let csv = repo.dir.path("parcels.csv")
        try db.execute(
            "COPY (SELECT 1000000000 + i AS bbl, 'active' AS status, i / 4 AS score FROM range(5000) t(i)) TO '\(csv)' (HEADER true)")

        let w1 = try repo.run("write", "parcels", csv, "--key", "bbl", "-m", "night 1")
        #expect(w1.status == 0, "\(w1.stderr)")
        #expect(w1.stdout.contains("parcels v1: 5000 rows"))
        let w2 = try repo.run(
            "write", "parcels", "--sql", "SELECT bbl, CASE WHEN bbl = 1000000007 THEN 'sold' ELSE status END AS status, score FROM parcels",
            "-m", "night 2")
        #expect(w2.status == 0, "\(w2.stderr)")

        let q = try repo.run(
            "query", "--at", "old=parcels@1",
            "SELECT o.status AS before, p.status AS after FROM old o JOIN parcels p USING (bbl) WHERE bbl = 1000000007", "--format", "csv")
        #expect(q.status == 0, "\(q.stderr)")
        #expect(q.stdout == "before,after\nactive,sold\n")

        let json = try repo.run("query", "SELECT count(*) AS n FROM parcels", "--json")
        #expect(json.stdout.contains("\"n\" : 5000"))

        let log = try repo.run("log", "--json")
        let commits = try JSONDecoder().decode([LoggedCommit].self, from: Data(log.stdout.utf8))
        #expect(commits.map(\.message) == ["night 2", "night 1"])
        #expect(try repo.run("show", String(commits[1].id.prefix(8))).stdout.contains("night 1"))

        let info = try repo.run("info", "parcels", "--json")
        #expect(info.stdout.contains("\"rows\" : 5000"))
        #expect(info.stdout.contains("\"sharedBytes\""))
        #expect(try repo.run("versions", "parcels").stdout.contains("│ 2 "))
        #expect(try repo.run("tables").stdout.contains("parcels"))

        let out = repo.dir.path("v1.parquet")
        #expect(try repo.run("export", "parcels", "--at", "parcels=1", "-o", out).status == 0)
        #expect(try db.query("SELECT count(*) FROM '\(out)' WHERE status = 'sold'").scalar == .int(0))
        let verify = try repo.run("verify")
        #expect(verify.status == 0)
        #expect(verify.stdout.contains("ok"))
    }

    @Test func branchesTagsAndSwitchFromTheCommandLine() throws {
        let repo = try CLIRepository()
        #expect(try repo.run("write", "master", "--sql", "SELECT r AS bbl, 10 AS score FROM range(100) t(r)", "--key", "bbl").status == 0)
        let created = try repo.run("branch", "experiment")
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.stdout.hasPrefix("created branch experiment at "))
        #expect(try repo.run("tag", "night-1").status == 0)
        let update = try repo.run("update", "master", "--set", "score = 20", "--where", "bbl < 50", "--branch", "experiment")
        #expect(update.status == 0, "\(update.stderr)")

        let compared = try repo.run(
            "query", "--at", "master=experiment", "--at", "old=master@main",
            "SELECT (SELECT sum(score) FROM master) AS experiment, (SELECT sum(score) FROM old) AS main", "--format", "csv")
        #expect(compared.stdout == "experiment,main\n1500,1000\n", "\(compared.stderr)")
        #expect(try repo.run("query", "SELECT sum(score) FROM master", "--commit", "experiment~1", "--format", "csv").stdout.hasSuffix("\n1000\n"))

        let listed = try repo.run("branch")
        #expect(listed.stdout.contains("* main") && listed.stdout.contains("  experiment"))
        #expect(try repo.run("tag").stdout.hasPrefix("night-1  "))
        #expect(try repo.run("switch", "experiment").stdout == "switched to branch experiment\n")
        #expect(try repo.run("query", "SELECT sum(score) FROM master", "--format", "csv").stdout == "sum(score)\n1500\n")
        #expect(try repo.run("log", "--json").stdout.contains("\"branch\" : \"experiment\""))

        let bad = try repo.run("branch", "bad name")
        #expect(bad.status != 0 && bad.stderr.contains("not a valid branch name"))
        let current = try repo.run("branch", "-d", "experiment")
        #expect(current.status != 0 && current.stderr.contains("cannot delete the current branch"))
        #expect(try repo.run("switch", "main").status == 0)
        #expect(try repo.run("branch", "-d", "experiment").stdout.hasPrefix("deleted branch experiment"))
        #expect(try repo.run("tag", "-d", "night-1").status == 0)
        #expect(try repo.run("verify").status == 0)
    }

    @Test func diffMergeAndGraphFromTheCommandLine() throws {
        let repo = try CLIRepository()
        #expect(try repo.run("write", "master", "--sql", "SELECT r AS bbl, 10 AS score, 'open' AS status FROM range(100) t(r)", "--key", "bbl").status == 0)
        #expect(try repo.run("branch", "experiment").status == 0)
        #expect(try repo.run("update", "master", "--set", "score = 20", "--where", "bbl IN (3, 4)", "--branch", "experiment").status == 0)
        #expect(try repo.run("update", "master", "--set", "status = 'closed'", "--where", "bbl = 4").status == 0)

        let stat = try repo.run("diff", "main", "experiment", "--stat", "--json")
        #expect(stat.status == 0, "\(stat.stderr)")
        #expect(stat.stdout.contains("\"updated\" : 2"), "\(stat.stdout)")
        let cells = try repo.run("diff", "main~1", "experiment", "--format", "csv")
        #expect(cells.stdout == "table,change,key,column,old,new\nmaster,update,bbl=3,score,10,20\nmaster,update,bbl=4,score,10,20\n", "\(cells.stderr)")
        let feed = repo.dir.path("feed.parquet")
        #expect(try repo.run("diff", "main~1", "experiment", "master", "--rows", "-o", feed).status == 0)
        let db = try scratchDuckDB()
        #expect(try db.query("SELECT count(*) FROM read_parquet('\(feed)') WHERE _change = 'update_postimage' AND score = 20").scalar.int == 2)

        let merged = try repo.run("merge", "experiment", "-m", "adopt")
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(merged.stdout.hasPrefix("merged experiment into main"))
        #expect(try repo.run("query", "SELECT score || status FROM master WHERE bbl = 4", "--format", "csv").stdout == "(score || status)\n20closed\n")
        let graph = try repo.run("log", "--graph").stdout
        #expect(graph.hasPrefix("*  ") && graph.contains("\n|\\\n") && graph.contains("adopt"), "\(graph)")

        // A conflicting cell: reported, exit 1, nothing committed.
        #expect(try repo.run("update", "master", "--set", "score = 1", "--where", "bbl = 9").status == 0)
        #expect(try repo.run("update", "master", "--set", "score = 2", "--where", "bbl = 9", "--branch", "experiment").status == 0)
        let head = try repo.run("log", "--json").stdout
        let conflict = try repo.run("merge", "experiment", "--json")
        #expect(conflict.status == 1)
        #expect(conflict.stdout.contains("\"column\" : \"score\"") && conflict.stdout.contains("\"theirs\" : \"2\""), "\(conflict.stdout)")
        #expect(try repo.run("log", "--json").stdout == head)
        #expect(try repo.run("merge", "experiment", "--strategy", "theirs").status == 0)
        #expect(try repo.run("query", "SELECT score FROM master WHERE bbl = 9", "--format", "csv").stdout == "score\n2\n")
        let unknown = try repo.run("merge", "experiment", "--strategy", "newest")
        #expect(unknown.status != 0 && unknown.stderr.contains("use fail, ours or theirs"))
        #expect(try repo.run("verify").status == 0)
    }

    struct LoggedCommit: Decodable {
        let id: String
        let message: String
    }
}

@Suite struct BadInputTests {
    @Test func badInputIsAClearErrorAndChangesNothing() throws {
        let repo = try CLIRepository()
        let db = try scratchDuckDB()
        let good = repo.dir.path("good.parquet")
        try db.execute("COPY (SELECT i AS k, 'v' || i AS v FROM range(1000) t(i)) TO '\(good)'")
        #expect(try repo.run("write", "t", good, "--key", "k").status == 0)

        let truncated = repo.dir.path("truncated.parquet")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        let ragged = repo.dir.path("ragged.csv")
        try "a,b\n1,2\n3,4,5\n6,7\n".write(toFile: ragged, atomically: true, encoding: .utf8)
        let dupes = repo.dir.path("dupes.csv")
        try "k,v\n1,a\n2,b\n2,c\n3,d\n3,e\n".write(toFile: dupes, atomically: true, encoding: .utf8)
        // Duplicates of a two-column key that are not neighbours in the input.
        let pairDupes = repo.dir.path("pair-dupes.csv")
        try "a,b,v\n1,x,1\n1,y,2\n0,x,3\n1,x,4\n".write(toFile: pairDupes, atomically: true, encoding: .utf8)
        let nulls = repo.dir.path("nulls.csv")
        try "k,v\n1,a\n,b\n".write(toFile: nulls, atomically: true, encoding: .utf8)

        let cases: [([String], String)] = [
            (["write", "t", repo.dir.path("missing.parquet")], "does not exist"),
            (["write", "t", truncated], "cannot read"),
            (["write", "t", ragged], "line 3 has 3 fields, but the header has 2"),
            (["write", "t", dupes, "--key", "k"], "(2 rows)"),
            (["write", "t", pairDupes, "--key", "a,b"], "1 key value(s) of (a, b) occur more than once: (1, x) (2 rows)"),
            (["write", "t", nulls, "--key", "k"], "NULL in the key"),
            (["write", "t", good, "--key", "nope"], "key column 'nope'"),
            (["query", "SELECT * FROM nope"], "nope"),
            (["export", "nope", "-o", repo.dir.path("x.parquet")], "no table 'nope'"),
            (["versions", "nope"], "no table 'nope'"),
            (["query", "SELEC 1"], "syntax error"),
            (["write", "t", "--sql", "SELEC 1"], "syntax error"),
            (["write", "", good], "empty"),
            (["write", String(repeating: "x", count: 300), good], "limit is 255"),
            (["write", "a/b", good], "path separator"),
            (["write", "a..b", good], "'..'"),
            (["write", "a\"b", good], "quote"),
            (["write", "it's", good], "quote"),
            (["query", "--at", "t=99", "SELECT * FROM t"], "no version 99"),
        ]
        let before = try repo.state()
        for (args, expected) in cases {
            let result = try repo.run(args)
            #expect(result.status != 0, "\(args) should fail")
            #expect(result.stderr.contains(expected), "\(args): stderr was \(result.stderr)")
            #expect(try repo.state() == before, "\(args) changed the repository")
        }
        #expect(try repo.run("query", "SELECT count(*) FROM t", "--format", "csv").stdout == "count_star()\n1000\n")
    }

    /// `udr sql` writes: each statement a commit, RETURNING and queries
    /// printed; a write at a pinned version is refused.
    @Test func sqlWritesFromTheCommandLine() throws {
        let repo = try CLIRepository()
        let created = try repo.run("sql", "CREATE TABLE parcels (bbl BIGINT, status VARCHAR, PRIMARY KEY (bbl))")
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.stdout.contains("parcels: created, 0 rows"))
        let inserted = try repo.run("sql", "INSERT INTO parcels SELECT 1000 + range, 'active' FROM range(100)")
        #expect(inserted.stdout.contains("parcels: 100 rows inserted (commit "), "\(inserted.stdout)")
        let updated = try repo.run(
            "sql", "UPDATE parcels SET status = 'sold' WHERE bbl = 1007 RETURNING bbl, status", "--format", "csv", "-m", "sold one")
        #expect(updated.stdout.hasPrefix("bbl,status\n1007,sold\n"), "\(updated.stdout)")
        #expect(updated.stdout.contains("parcels: 1 row updated"))
        #expect(try repo.run("log", "--limit", "1").stdout.contains("sold one"))
        let script = try repo.run("sql", "DELETE FROM parcels WHERE bbl < 1010; SELECT count(*) AS n FROM parcels", "--atomic")
        #expect(script.status == 0, "\(script.stderr)")
        #expect(script.stdout.contains("90"))
        let changes = try repo.run("changes", "--table", "parcels", "--json")
        #expect(changes.stdout.contains("\"deleted\" : 10"))

        let before = try repo.state()
        for args in [["--at", "parcels=2"], ["--commit", "tx:2"], ["--as-of", "2026-01-01T00:00:00Z"]] {
            let pinned = try repo.run(["sql", "UPDATE parcels SET status = 'x'"] + args)
            #expect(pinned.status != 0)
            #expect(pinned.stderr.contains("read-only"), "\(pinned.stderr)")
        }
        let twice = try repo.run("sql", "CREATE TABLE parcels AS SELECT 1 AS bbl")
        #expect(twice.status != 0 && twice.stderr.contains("already"))
        #expect(try repo.state() == before)
    }

    /// The DDL verbs: alter, rename, drop, and the history they keep.
    @Test func ddlVerbsFromTheCommandLine() throws {
        let repo = try CLIRepository()
        #expect(try repo.run("write", "parcels", "--sql", "SELECT range AS bbl, range % 3 AS zone FROM range(100)", "--key", "bbl").status == 0)
        let added = try repo.run("alter", "parcels", "--add", "flood VARCHAR DEFAULT 'none'")
        #expect(added.status == 0, "\(added.stderr)")
        #expect(try repo.run("alter", "parcels", "--rename", "zone=district").status == 0)
        #expect(try repo.run("alter", "parcels", "--type", "district=VARCHAR").status == 0)
        let columns = try repo.run("query", "SELECT string_agg(column_name || ' ' || column_type, ', ') AS c FROM (DESCRIBE parcels)", "--format", "csv")
        #expect(columns.stdout == "c\n\"bbl BIGINT, district VARCHAR, flood VARCHAR\"\n", "\(columns.stdout)")
        let renamed = try repo.run("rename", "parcels", "lots")
        #expect(renamed.stdout.contains("parcels → lots: renamed"), "\(renamed.stdout) \(renamed.stderr)")
        #expect(try repo.run("log", "lots", "--json").stdout.components(separatedBy: "\"tx_id\"").count - 1 == 5)
        let dropped = try repo.run("drop", "lots")
        #expect(dropped.stdout.contains("lots: dropped"))
        #expect(try repo.run("tables").stdout.contains("lots") == false)
        #expect(try repo.run("query", "--commit", "main~1", "SELECT count(*) AS n FROM lots", "--format", "csv").stdout == "n\n100\n")
        let again = try repo.run("drop", "lots")
        #expect(again.status != 0 && again.stderr.contains("no table 'lots'"))
        let bad = try repo.run("alter", "nope", "--drop", "x")
        #expect(bad.status != 0 && bad.stderr.contains("no table 'nope'"))
        #expect(try repo.run("verify").status == 0)
    }

    /// `udr query` only reads: a statement that would write fails before
    /// anything runs, names `udr sql`, and the repository stays as it was.
    @Test func queryRefusesEveryKindOfWrite() throws {
        let repo = try CLIRepository()
        #expect(try repo.run("write", "t", "--sql", "SELECT range AS k FROM range(5)", "--key", "k").status == 0)
        let before = try repo.state()
        let out = repo.dir.path("out.csv")
        for sql in [
            "CREATE TABLE x AS SELECT 1", "INSERT INTO t VALUES (9)", "UPDATE t SET k = k + 1", "DELETE FROM t",
            "MERGE INTO t USING (SELECT 1 AS k) s ON t.k = s.k WHEN MATCHED THEN DELETE", "DROP TABLE t", "ALTER TABLE t RENAME TO u",
            "COPY (SELECT * FROM t) TO '\(out)'", "ATTACH '\(repo.dir.path("x.duckdb"))' AS x", "INSTALL spatial", "LOAD spatial",
            "SET threads = 1", "CREATE SCHEMA s", "SELECT 1; DROP TABLE t",
        ] {
            let result = try repo.run("query", sql)
            #expect(result.status != 0, "\(sql) ran as a query")
            #expect(result.stderr.contains("udr sql"), "\(sql): \(result.stderr)")
            #expect(try repo.state() == before, "\(sql) changed the repository")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(!FileManager.default.fileExists(atPath: repo.dir.path("x.duckdb")))
        #expect(try repo.run("query", "SELECT count(*) AS n FROM t", "--format", "csv").stdout == "n\n5\n")
    }

    /// Damage to the local segment cache: `verify` names each file, a
    /// query still answers right, `verify --repair` removes the damage.
    @Test func aDamagedCacheIsFoundAndRepaired() throws {
        let repo = try CLIRepository()
        #expect(try repo.run("write", "t", "--sql", "SELECT range AS k, range % 7 AS a FROM range(50000)", "--key", "k").status == 0)
        let sum = "SELECT sum(a) AS s, count(*) AS n FROM t"
        let expected = try repo.run("query", sum, "--format", "csv").stdout
        #expect(expected == "s,n\n149997,50000\n")
        let cache = repo.root.path + "/.udr/cache/segments"
        let files = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".parquet") }
        #expect(!files.isEmpty)
        func damage() throws {
            for name in files {
                let url = URL(fileURLWithPath: cache + "/" + name)
                var data = try Data(contentsOf: url)
                data[data.count / 3] ^= 0x08
                try data.write(to: url)
            }
        }
        try damage()
        let found = try repo.run("verify")
        #expect(found.status != 0)
        for name in files { #expect(found.stdout.contains(name), "verify does not name \(name)") }
        #expect(found.stdout.contains("udr verify --repair"))
        #expect(try repo.run("query", sum, "--format", "csv").stdout == expected)
        try damage()
        let repaired = try repo.run("verify", "--repair")
        #expect(repaired.status == 0, "\(repaired.stdout)")
        #expect(repaired.stdout.contains("removed the damaged cached file"))
        #expect(try repo.run("query", sum, "--format", "csv").stdout == expected)
        #expect(try repo.run("verify").status == 0)
    }

    @Test func withoutARuntimeTheErrorSaysWhatIsMissingAndHowToInstallIt() throws {
        let repo = try CLIRepository()
        let process = Process()
        process.executableURL = udrExecutable()
        process.arguments = ["query", "SELECT 1"]
        process.currentDirectoryURL = repo.root
        process.environment = ["UDR_CACHE_DIR": repo.dir.path("empty-cache"), "PATH": "/usr/bin:/bin"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        #expect(message.contains("DuckDB 1.5.5 runtime is not installed"), "\(message)")
        #expect(message.contains("make setup"))
    }

    @Test func withoutARepositoryTheErrorSaysHowToMakeOne() throws {
        let dir = TemporaryDirectory("norepo")
        let result = try udr(["log"], in: dir.url)
        #expect(result.status != 0)
        #expect(result.stderr.contains("udr init"))
    }
}

@Suite struct CrashSafetyTests {
    /// A writer killed with SIGKILL at random instants leaves no partial
    /// object and either the old head or the new one.
    @Test func aKilledWriterLeavesAConsistentRepository() throws {
        let repo = try CLIRepository()
        #expect(try repo.run("write", "t", "--sql", "SELECT i AS k, 'seed' AS v FROM range(1000) t(i)", "--key", "k").status == 0)
        var generator = SystemRandomNumberGenerator()
        var committed = 1
        for round in 0..<8 {
            let process = Process()
            process.executableURL = udrExecutable()
            process.currentDirectoryURL = repo.root
            process.arguments = [
                "write", "t", "--sql", "SELECT i AS k, md5((i + \(round))::VARCHAR) AS v, hash(i * \(round)) AS h FROM range(400000) t(i)",
                "--key", "k",
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32.random(in: 50_000...1_500_000, using: &generator))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()

            let verify = try repo.run("verify")
            #expect(verify.status == 0, "round \(round): \(verify.stdout)")
            let log = try repo.run("log", "--json")
            let commits = log.stdout.components(separatedBy: "\"tx_id\"").count - 1
            #expect(commits == committed || commits == committed + 1, "round \(round): \(commits) commits")
            committed = commits
            let rows = try repo.run("query", "SELECT count(*) FROM t", "--format", "csv").stdout
            // The seed version has 1,000 rows; every killed writer that committed wrote 400,000.
            #expect(rows == "count_star()\n\(commits == 1 ? 1000 : 400000)\n", "round \(round)")
        }
        print("crash safety: \(committed - 1) of 8 killed writers had committed before the kill")
    }
}

@Suite struct CLITransactionTests {
    /// A pipeline whose steps are separate processes sharing one transaction.
    @Test func aTransactionSpansProcesses() throws {
        let repo = try CLIRepository()
        #expect(
            try repo.run("write", "parcels", "--sql", "SELECT r AS bbl, 'open' AS status FROM range(100) t(r)", "--key", "bbl").status == 0)
        #expect(try repo.run("changes", "--latest").stdout == "1\n")
        let tx = try repo.run("tx", "begin").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(tx.hasPrefix("tx-"))
        let steps: [[String]] = [
            ["write", "sales", "--sql", "SELECT r AS id, r * 2 AS price FROM range(10) t(r)", "--tx", tx],
            ["update", "parcels", "--set", "status = 'sold'", "--where", "bbl IN (SELECT id FROM sales)", "--tx", tx],
            ["delete", "parcels", "--where", "bbl >= 95", "--tx", tx],
            ["upsert", "parcels", "--sql", "SELECT 500 AS bbl, 'new' AS status", "--tx", tx],
        ]
        for step in steps {
            let result = try repo.run(step)
            #expect(result.status == 0, "\(step): \(result.stderr)")
            #expect(result.stdout.contains("staged in \(tx)"))
        }
        // Inside, the transaction's own writes; outside, nothing yet.
        let inside = try repo.run(
            "query", "--tx", tx, "SELECT count(*) FILTER (WHERE status = 'sold') AS sold, count(*) AS n FROM parcels", "--format", "csv")
        #expect(inside.stdout == "sold,n\n10,96\n")
        #expect(try repo.run("query", "SELECT count(*) AS n FROM parcels", "--format", "csv").stdout == "n\n100\n")
        #expect(try repo.run("tx", "list").stdout.contains("parcels, sales"))

        let commit = try repo.run("tx", "commit", tx, "-m", "nightly")
        #expect(commit.status == 0, "\(commit.stderr)")
        #expect(try repo.run("changes", "--latest").stdout == "2\n")
        let changes = try repo.run("changes", "--since", "1", "--json")
        #expect(changes.stdout.contains("\"message\" : \"nightly\""))
        #expect(changes.stdout.contains("\"updated\" : 10"))
        #expect(try repo.run("query", "SELECT count(*) AS n FROM parcels", "--format", "csv").stdout == "n\n96\n")

        // Bad input: a clear error, nothing changed.
        let before = try repo.state()
        let again = try repo.run("tx", "commit", tx)
        #expect(again.status != 0 && again.stderr.contains("already committed"))
        let unknown = try repo.run("write", "sales", "--sql", "SELECT 1 AS id", "--tx", "tx-123")
        #expect(unknown.status != 0 && unknown.stderr.contains("there is no transaction tx-123"))
        let keyless = try repo.run("upsert", "sales", "--sql", "SELECT 1 AS id, 2 AS price")
        #expect(keyless.status != 0 && keyless.stderr.contains("it has no key"))
        let badSQL = try repo.run("update", "parcels", "--set", "status = ", "--where", "bbl = 1")
        #expect(badSQL.status != 0 && badSQL.stderr.contains("not an assignment"))
        let badType = try repo.run("append", "parcels", "--sql", "SELECT 'x' AS bbl")
        #expect(badType.status != 0 && badType.stderr.contains("bbl is BIGINT in parcels but VARCHAR"))
        #expect(try repo.state() == before)

        #expect(try repo.run("expire", "--keep-last", "1").stdout.contains("expired 1 commits"))
        let gc = try repo.run("gc", "--grace", "0s")
        #expect(gc.status == 0 && gc.stdout.contains("freed"))
        #expect(try repo.run("verify").status == 0)
    }
}

/// A write that fills the disk: a small file system the test mounts
/// (tmpfs, 4 MB) holds the repository.
@Suite struct DiskFullTests {
    @Test func aWriteThatFillsTheDiskFailsClearlyAndLeavesTheRepositoryAsItWas() throws {
        let dir = TemporaryDirectory("full")
        let mountPoint = dir.url.appendingPathComponent("disk")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        let mounted = try run(URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mountPoint.path], in: dir.url)
        try #require(mounted.status == 0, "the test mounts a 4 MB tmpfs (it needs root): \(mounted.stderr)")
        defer { _ = try? run(URL(fileURLWithPath: "/bin/umount"), ["-l", mountPoint.path], in: dir.url) }
        let root = mountPoint.appendingPathComponent("repo")
        #expect(try udr(["init", root.path], in: dir.url).status == 0)
        let small = try udr(["write", "small", "--sql", "SELECT range AS k, range * 2 AS v FROM range(1000)", "--key", "k"], in: root)
        #expect(small.status == 0, "\(small.stderr)")
        // The commits, the tables' content, and whether everything verifies
        // (objects of the failed write that no commit reaches may stay, for GC).
        func state() throws -> String {
            let verify = try udr(["verify"], in: root)
            return try udr(["log", "--json"], in: root).stdout + "verify: \(verify.status) "
                + udr(["query", "SELECT count(*), sum(v) FROM small", "--format", "csv"], in: root).stdout
        }
        let before = try state()
        #expect(before.contains("verify: 0 "))
        let wide = "SELECT range AS k, md5(range::VARCHAR) || md5((range + 1)::VARCHAR) AS s FROM range(200000)"
        for args in [
            ["write", "big", "--sql", wide, "--key", "k"],
            ["sql", "CREATE TABLE big AS \(wide)"],
            ["sql", "INSERT INTO small SELECT range + 100000, (hash(range) >> 1)::BIGINT FROM range(2000000)"],
            ["sql", "BEGIN; UPDATE small SET v = 0 WHERE k = 1; CREATE TABLE big AS \(wide); COMMIT"],
        ] {
            let result = try udr(args, in: root)
            #expect(result.status != 0, "\(args[0]) succeeded on a full disk")
            #expect(result.stderr.contains("The disk is full: nothing was committed"), "\(args[0]): \(result.stderr)")
            #expect(try state() == before, "\(args[0]) changed the repository")
        }
        let leftovers = FileManager.default.enumerator(atPath: root.path)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".tmp") } ?? []
        #expect(leftovers.isEmpty, "temporary files left: \(leftovers)")
        // Once space is freed, writes go on.
        try FileManager.default.removeItem(at: root.appendingPathComponent(".udr/cache"))
        #expect(try udr(["sql", "UPDATE small SET v = -1 WHERE k = 1"], in: root).status == 0)
        #expect(try udr(["verify"], in: root).status == 0)
    }
}
