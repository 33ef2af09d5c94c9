import Foundation
import Testing
import UDRCore
import UDRSQLite
import UDRTesting

@testable import UDRS3

/// Starts `udr` and kills it with SIGKILL after `delay` seconds (unless it
/// ended first); returns whether it was killed.
func killed(_ arguments: [String], in directory: URL, after delay: TimeInterval) throws -> (killed: Bool, seconds: TimeInterval) {
    let process = Process()
    process.executableURL = udrExecutable()
    process.arguments = arguments
    process.currentDirectoryURL = directory
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    let began = Date()
    try process.run()
    let deadline = began.addingTimeInterval(delay)
    while process.isRunning, Date() < deadline { usleep(2000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    return (process.terminationReason == .uncaughtSignal, Date().timeIntervalSince(began))
}

@Suite(.serialized) struct RemoteCrashTests {
    /// Pushes and fetches killed at random instants: the remote and both
    /// repositories verify, each ref is the old or the new commit, and the
    /// push or fetch run again completes.
    @Test(arguments: RemoteKind.allCases) func pushesAndFetchesKilledAtAnyInstantLoseNothing(_ kind: RemoteKind) async throws {
        let dir = TemporaryDirectory()
        let location = try await makeRemote(kind, dir)
        let a = try makeSyncRepository(dir, "a")
        try await a.addRemote("origin", location)
        _ = try await writeNight(a, 0, rows: 5000)
        _ = try await a.push()
        let b = try await clone(location, dir, "b")
        let aDir = dir.url.appendingPathComponent("a")
        let bDir = dir.url.appendingPathComponent("b")
        let storage = try s3Configuration.remoteStorage(location)
        func remoteHead() async throws -> ObjectID? {
            guard let value = try await storage.read("refs/heads/main") else { return nil }
            return try JSONDecoder().decode([String: ObjectID].self, from: value.data)["commit"]
        }
        // How long a whole push takes: kills land within it.
        _ = try await writeNight(a, 1, rows: 5000)
        var span = try killed(["push"], in: aDir, after: 60).seconds
        var kills = 0
        var night = 1
        // Until 25 runs were killed before they ended (a run that ends first
        // makes the next kills come sooner).
        while kills < 25 {
            night += 1
            try #require(night < 200, "only \(kills) runs were killed before they ended")
            let old = try await remoteHead()
            _ = try await writeNight(a, night, rows: 5000)
            let new = try await a.resolve("main")
            let push = try killed(["push"], in: aDir, after: Double.random(in: 0..<span))
            if push.killed { kills += 1; span *= 1.05 } else { span = push.seconds * 0.8 }
            let landed = try await remoteHead()
            #expect(landed == old || landed == new, "night \(night): the remote's main is neither the old nor the new commit")
            #expect(try await a.verify().problems == [])

            // A fetch killed at a random instant, then one that completes.
            let before = try await b.remoteRefs()["origin/main"]
            let fetch = try killed(["fetch"], in: bDir, after: Double.random(in: 0..<span))
            if fetch.killed { kills += 1 } else { span = min(span, fetch.seconds * 0.8) }
            let tracking = try await b.remoteRefs()["origin/main"]
            #expect(tracking == before || tracking == landed, "night \(night): origin/main is neither the old nor the new commit")
            #expect(try await b.verify().problems == [])
            _ = try await b.fetch()
            #expect(try await b.remoteRefs()["origin/main"] == landed)

            // Run again, the push completes.
            _ = try await a.push()
            #expect(try await remoteHead() == new)
        }
        _ = try await b.pull()
        try await expectSame(a, b)
        let fresh = try await clone(location, dir, "fresh")
        try await expectSame(a, fresh)
    }
}
