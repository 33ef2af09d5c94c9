import Foundation

/// A SeaweedFS S3 server for tests, on 127.0.0.1 with a fresh data
/// directory: started once per test process from the environment
/// `scripts/setup-s3.sh` provisions (or `UDR_S3_VENV`), and killed, its
/// data removed, when the process exits (a watchdog shell sees to it even
/// after a crash).
public struct S3TestServer: Sendable {
    public let endpoint: URL
    public let accessKey: String
    public let secretKey: String

    /// The process's server, started on first use.
    public static func shared() async throws -> S3TestServer { try await starter.value }

    private static let starter = Task<S3TestServer, any Error> { try start() }

    /// The package's root directory (for its scripts).
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The virtual environment holding `weed` and `moto_server`.
    public static func environment() throws -> URL {
        if let venv = ProcessInfo.processInfo.environment["UDR_S3_VENV"], !venv.isEmpty { return URL(fileURLWithPath: venv) }
        let script = packageRoot.appendingPathComponent("scripts/setup-s3.sh")
        let process = Process()
        process.executableURL = script
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let path = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !path.isEmpty
        else { throw TestServerError("scripts/setup-s3.sh failed (status \(process.terminationStatus))") }
        return URL(fileURLWithPath: path)
    }

    static func start() throws -> S3TestServer {
        let weed = try environment().appendingPathComponent("bin/weed")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("udr-weed-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let (access, secret) = ("udrtest", "udrtest-secret-\(UUID().uuidString.prefix(8))")
        let config = #"{"identities":[{"name":"udr","credentials":[{"accessKey":"\#(access)","secretKey":"\#(secret)"}],"actions":["Admin","Read","Write","List","Tagging"]}]}"#
        try Data(config.utf8).write(to: dir.appendingPathComponent("s3.json"))
        for _ in 0..<5 {
            let port = freePortBlock(15)
            let d = dir.path
            let p = port
            let command = [
                "'\(weed.path)' server -dir=\(d)/data -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=\(p + 1) -volume.port=\(p + 2)",
                "-filer.port=\(p + 3) -master.port.grpc=\(p + 11) -volume.port.grpc=\(p + 12) -filer.port.grpc=\(p + 13)",
                "-s3.port.grpc=\(p + 14) -volume.max=20 -master.volumeSizeLimitMB=64 -volume.preStopSeconds=0",
                "-filer.localSocket=\(d)/filer.sock -s3.localSocket=\(d)/s3.sock -s3 -s3.port=\(p) -s3.config=\(d)/s3.json",
                "-s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false",
            ].joined(separator: " ")
            let process = try launchWatched(
                "mkdir -p \(d)/data; \(command) > \(d)/weed.log 2>&1",
                cleanup: "rm -rf \(d) /tmp/seaweedfs-*-grpc-\(p + 11).sock /tmp/seaweedfs-*-grpc-\(p + 12).sock /tmp/seaweedfs-*-grpc-\(p + 13).sock")
            let server = S3TestServer(endpoint: URL(string: "http://127.0.0.1:\(port)")!, accessKey: access, secretKey: secret)
            // Ready when the S3 port accepts connections; the caller's first
            // requests retry until reads work.
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline, process.isRunning {
                if canConnect(port: port) { return server }
                usleep(100_000)
            }
            process.terminate()
        }
        throw TestServerError("SeaweedFS did not start; see its log under \(dir.path)")
    }

    /// Runs a server command under a shell that outlives neither this
    /// process nor the server: when the test process is gone it kills the
    /// server (SIGKILL) and runs `cleanup`. Returns the shell.
    static func launchWatched(_ command: String, cleanup: String = "") throws -> Process {
        let watchdog = """
            \(command) & w=$!
            while kill -0 \(getpid()) 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.5; done
            kill -9 $w 2>/dev/null; \(cleanup)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", watchdog]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// A port P such that P…P+count-1 look free (bound and released here).
    public static func freePortBlock(_ count: Int) -> Int {
        while true {
            let base = Int.random(in: 20000...60000)
            if (0..<count).allSatisfy({ portIsFree(base + $0) }) { return base }
        }
    }

    static func portIsFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = loopback(port)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = loopback(port)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    static func loopback(_ port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }
}

public struct TestServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension S3TestServer {
    /// A moto server for tests, with authentication on: its first three
    /// requests (unauthenticated) create an IAM user, its access key and
    /// an `s3:*` policy; every request after is checked against that key.
    /// Started once per test process, killed when it exits.
    public static func moto() async throws -> S3TestServer { try await motoStarter.value }

    private static let motoStarter = Task<S3TestServer, any Error> { try startMoto() }

    static func startMoto() throws -> S3TestServer {
        let venv = try environment()
        let port = freePortBlock(1)
        let process = try launchWatched("INITIAL_NO_AUTH_ACTION_COUNT=3 '\(venv.path)/bin/moto_server' -H 127.0.0.1 -p \(port) > /dev/null 2>&1")
        let deadline = Date().addingTimeInterval(30)
        while !canConnect(port: port) {
            guard Date() < deadline, process.isRunning else { throw TestServerError("moto_server did not start on port \(port)") }
            usleep(100_000)
        }
        let script = """
            import boto3, json
            iam = boto3.client("iam", endpoint_url="http://127.0.0.1:\(port)", region_name="us-east-1",
                               aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
            iam.create_user(UserName="udr")
            key = iam.create_access_key(UserName="udr")["AccessKey"]
            iam.put_user_policy(UserName="udr", PolicyName="s3", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
            print(key["AccessKeyId"], key["SecretAccessKey"])
            """
        let python = Process()
        python.executableURL = venv.appendingPathComponent("bin/python")
        python.arguments = ["-c", script]
        let out = Pipe()
        python.standardOutput = out
        try python.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        python.waitUntilExit()
        let words = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace).map(String.init)
        guard python.terminationStatus == 0, words.count == 2 else { throw TestServerError("could not create moto's IAM user") }
        return S3TestServer(endpoint: URL(string: "http://127.0.0.1:\(port)")!, accessKey: words[0], secretKey: words[1])
    }
}
