import DuckDB
import Foundation
import UDRCore
import UDRS3
import UDRSQLite

// `udr-bench driver PATH`: UDR's side of `make bench-peers`.
//
// The peer benchmark (bench/peers.py) is written in Python, where the
// other systems' libraries live; it drives UDR through this process so
// that UDR is measured in-process, like the peers, and not by the start-up
// of one `udr` process per table. One JSON request per line on stdin, one
// JSON answer per line on stdout:
//
//   {"op":"write","message":M,"tag":T,"tables":[{"name":N,"file":F,"key":[K…]}…]}
//       → {"seconds":S}            all tables in one transaction, then tag T
//   {"op":"query","sql":Q,"ref":R?,"repeat":N}
//       → {"rows":[[text…]…],"seconds":[S…]}
//   {"op":"diff","from":R,"to":R,"table":N}
//       → {"seconds":S,"inserted":I,"deleted":D,"updated":U}
//   {"op":"history","table":N,"key":{"col":"value"}}
//       → {"seconds":S,"changes":C}
//   {"op":"branch","name":B,"from":R}
//       → {"seconds":S}
//   {"op":"push","url":"s3://BUCKET/PREFIX","endpoint":E}
//       → {"seconds":S,"bytes_sent":B,"objects":N}   the bucket is created first if missing
//   {"op":"clone","url":U,"endpoint":E,"dir":D,"depth":N?}
//       → {"seconds":S,"object_bytes":B,"objects":N}
//
// An error answers {"error":"…"} and the driver goes on.

struct DriverRequest: Decodable, Sendable {
    struct Table: Decodable, Sendable {
        let name: String
        let file: String
        let key: [String]?
    }
    let op: String
    let message: String?
    let tag: String?
    let tables: [Table]?
    let sql: String?
    let ref: String?
    let `repeat`: Int?
    let from: String?
    let to: String?
    let table: String?
    let key: [String: String]?
    let name: String?
    let url: String?
    let endpoint: String?
    let dir: String?
    let depth: Int?
}

@MainActor func runPeerDriver(repositoryPath: String) async throws {
    let url = URL(fileURLWithPath: repositoryPath)
    let repository =
        FileManager.default.fileExists(atPath: RepositoryLayout(root: url).formatFile.path)
        ? try LocalRepository.open(at: url, configuration: driverConfiguration) : try LocalRepository.create(at: url, configuration: driverConfiguration)
    while let line = readLine() {
        guard !line.isEmpty else { continue }
        let answer: [String: Any]
        do {
            let request = try JSONDecoder().decode(DriverRequest.self, from: Data(line.utf8))
            answer = try await serve(request, repository)
        } catch let error as UDRError {
            answer = ["error": error.message]
        } catch {
            answer = ["error": "\(error)"]
        }
        let data = try JSONSerialization.data(withJSONObject: answer)
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}

@MainActor private func serve(_ request: DriverRequest, _ repository: Repository) async throws -> [String: Any] {
    func required<T>(_ value: T?, _ field: String) throws -> T {
        guard let value else { throw UDRError(.invalidArgument, "the '\(request.op)' request needs '\(field)'") }
        return value
    }
    switch request.op {
    case "write":
        let tables = try required(request.tables, "tables")
        let elapsed = try await seconds { try await writeInOneTransaction(tables, message: request.message, repository) }
        if let tag = request.tag { _ = try await repository.createTag(tag) }
        return ["seconds": elapsed]
    case "query":
        let sql = try required(request.sql, "sql")
        let options = ReadOptions(commit: request.ref)
        var times: [Double] = []
        var result: ResultSet?
        for _ in 0..<max(1, request.repeat ?? 1) {
            times.append(try await seconds { result = try await repository.query(sql, options: options) })
        }
        let rows = result.map { $0.rows.map { $0.map { $0.string ?? NSNull() as Any } } } ?? []
        return ["rows": rows, "seconds": times]
    case "diff":
        let table = try TableName(try required(request.table, "table"))
        var difference: RepositoryDiff?
        let elapsed = try await seconds {
            difference = try await repository.diff(try required(request.from, "from"), try required(request.to, "to"), tables: [table])
        }
        let counts = difference?.tables.first(where: { $0.table == table })?.rows ?? RowCounts()
        return ["seconds": elapsed, "inserted": counts.inserted, "deleted": counts.deleted, "updated": counts.updated]
    case "history":
        let table = try TableName(try required(request.table, "table"))
        var history: RowHistory?
        let elapsed = try await seconds { history = try await repository.history(of: table, key: try required(request.key, "key")) }
        return ["seconds": elapsed, "changes": history?.rows.count ?? 0]
    case "branch":
        let name = try required(request.name, "name")
        let elapsed = try await seconds { _ = try await repository.createBranch(name, from: request.from) }
        return ["seconds": elapsed]
    case "push":
        let location = RemoteLocation(url: try required(request.url, "url"), endpoint: request.endpoint)
        if try await !repository.remotes().contains(where: { $0.name == "bench" }) {
            if case .s3(let bucket, _) = try location.kind(), let endpoint = request.endpoint, let endpointURL = URL(string: endpoint) {
                let client = S3Client(S3Configuration(endpoint: endpointURL, region: "us-east-1", credentials: try S3Credentials.resolve()))
                if try await !client.bucketExists(bucket) { try await client.createBucket(bucket) }
            }
            try await repository.addRemote("bench", location)
        }
        var report: SyncReport?
        let elapsed = try await seconds { report = try await repository.push("bench") }
        return ["seconds": elapsed, "bytes_sent": report?.bytesSent ?? 0, "objects": report?.objects ?? 0]
    case "clone":
        let location = RemoteLocation(url: try required(request.url, "url"), endpoint: request.endpoint)
        var report: SyncReport?
        let elapsed = try await seconds {
            report = try await LocalRepository.clone(
                location, into: URL(fileURLWithPath: try required(request.dir, "dir")), depth: request.depth, configuration: driverConfiguration
            ).1
        }
        return ["seconds": elapsed, "object_bytes": report?.objectBytes ?? 0, "objects": report?.objects ?? 0]
    default:
        throw UDRError(.invalidArgument, "unknown request '\(request.op)': write, query, diff, history, branch, push or clone")
    }
}

/// Repositories with remotes on S3.
private var driverConfiguration: Repository.Configuration {
    var configuration = Repository.Configuration()
    configuration.remoteStorage = .withS3
    return configuration
}

private func writeInOneTransaction(_ tables: [DriverRequest.Table], message: String?, _ repository: Repository) async throws {
    try await repository.transaction(message: message) { tx in
        _ = try await tx.write(try tables.map { TableWrite(try TableName($0.name), from: .file($0.file), key: $0.key) })
    }
}
