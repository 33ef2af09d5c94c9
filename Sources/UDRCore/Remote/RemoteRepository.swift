import Foundation

/// A remote as UDR lays it out in its storage: a marker, refs, and packs.
///
/// - `udr-remote.json`: the marker (format, default branch); a location
///   without it is not a UDR remote (an empty one becomes one on the
///   first push).
/// - `refs/heads/BRANCH`, `refs/tags/TAG`: `{"commit": "<id>"}`, moved
///   only by compare-and-swap on their version.
/// - `packs/NAME.pack` and `packs/NAME.idx`: objects in ``PackFormat``,
///   and the pack's tail (its index) beside it, named by the index's hash.
///   A push uploads each pack before its index and puts objects below
///   those that reach them (blobs before recipes before manifests before
///   commits) in the same or an earlier pack, so an object an index lists
///   has everything it reaches on the remote. A ref moves last.
struct RemoteRepository: Sendable {
    static let markerKey = "udr-remote.json"
    static let format = 1
    /// Packs are cut at this size (each one uploaded whole, in parts when large).
    static let packLimit = 256 << 20

    struct Marker: Codable {
        let format: Int
        let defaultBranch: String

        enum CodingKeys: String, CodingKey { case format, defaultBranch = "default_branch" }
    }

    struct RefValue: Codable {
        let commit: ObjectID
    }

    /// A ref on the remote: its commit and the version a compare-and-swap names.
    struct Ref: Sendable {
        let commit: ObjectID
        let version: String
    }

    let storage: any RemoteStorage
    /// The remote's name here (`origin`), for messages.
    let name: String

    /// Checks that the location is a UDR remote; with `creating`, an empty
    /// location becomes one. Returns its default branch.
    @discardableResult
    func open(creating: Bool, defaultBranch: String = Repository.defaultBranch) async throws(UDRError) -> String {
        if let marker = try await storage.read(Self.markerKey) {
            guard let value = try? JSONDecoder().decode(Marker.self, from: marker.data) else {
                throw UDRError(.invalidInput, "\(storage.location) has a \(Self.markerKey) that UDR cannot read; it is not a UDR remote")
            }
            guard value.format <= Self.format else {
                throw UDRError(.unsupportedType, "\(storage.location) is a UDR remote of format \(value.format); this udr reads format \(Self.format). Upgrade udr.")
            }
            return value.defaultBranch
        }
        let present = try await storage.list("")
        guard creating, present.isEmpty else {
            throw UDRError(
                .notARepository,
                present.isEmpty
                    ? "\(storage.location) is not a UDR remote (it is empty); push to it to make it one"
                    : "\(storage.location) is not a UDR remote: it holds other files (\(present.prefix(3).joined(separator: ", "))) and no \(Self.markerKey)")
        }
        let marker = try ObjectCoding.encode(Marker(format: Self.format, defaultBranch: defaultBranch))
        _ = try await storage.write(Self.markerKey, marker, if: .absent)
        return try await open(creating: false)
    }

    // MARK: Refs

    static func key(branch: String) -> String { "refs/heads/" + branch }
    static func key(tag: String) -> String { "refs/tags/" + tag }

    /// Every branch and tag on the remote.
    func refs() async throws(UDRError) -> (branches: [String: Ref], tags: [String: Ref]) {
        var branches: [String: Ref] = [:]
        var tags: [String: Ref] = [:]
        for key in try await storage.list("refs/") {
            guard let ref = try await ref(key) else { continue }
            if key.hasPrefix("refs/heads/") { branches[String(key.dropFirst("refs/heads/".count))] = ref }
            if key.hasPrefix("refs/tags/") { tags[String(key.dropFirst("refs/tags/".count))] = ref }
        }
        return (branches, tags)
    }

    func ref(_ key: String) async throws(UDRError) -> Ref? {
        guard let value = try await storage.read(key) else { return nil }
        guard let decoded = try? JSONDecoder().decode(RefValue.self, from: value.data) else {
            throw UDRError(.corruptObject, "the remote \(name)'s \(key) is damaged: it does not name a commit")
        }
        return Ref(commit: decoded.commit, version: value.version)
    }

    /// Moves a ref from `expected` (nil: it must not exist) to `commit`;
    /// false when someone else moved it first.
    func updateRef(_ key: String, to commit: ObjectID, expected: Ref?) async throws(UDRError) -> Bool {
        let data = try ObjectCoding.encode(RefValue(commit: commit))
        return try await storage.write(key, data, if: expected.map { .matching($0.version) } ?? .absent)
    }

    // MARK: Packs

    /// Where the remote keeps an object.
    struct Location: Sendable {
        let pack: String
        let offset: Int64
        let length: Int64
    }

    /// Every object the remote's packs hold. Pack indexes are immutable
    /// and named by their hash: those read before come from `cache`.
    func index(cache: URL) async throws(UDRError) -> [ObjectID: Location] {
        var out: [ObjectID: Location] = [:]
        let keys = try await storage.list("packs/")
        try? FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        for key in keys where key.hasSuffix(".idx") {
            let name = String(key.dropFirst("packs/".count).dropLast(".idx".count))
            let cached = cache.appendingPathComponent(name + ".idx")
            var tail = FileManager.default.contents(atPath: cached.path)
            var entries = tail.flatMap { try? PackFormat.entries(tail: $0, name: name, dataEnd: nil) }
            if entries == nil {
                guard let value = try await storage.read(key) else { continue }
                tail = value.data
                do throws(PackDamage) { entries = try PackFormat.entries(tail: value.data, name: name, dataEnd: nil) } catch {
                    throw UDRError(.corruptObject, "the remote \(name)'s pack index \(key) is damaged: \(error.message)")
                }
                try? value.data.write(to: cached, options: .atomic)
            }
            for entry in entries ?? [] { out[entry.id] = Location(pack: name, offset: entry.offset, length: entry.length) }
        }
        return out
    }

    /// Uploads objects as packs (in the order given, which must put every
    /// object after those it reaches), each pack before its index.
    /// Returns the packs written.
    func upload(_ objects: [(id: ObjectID, data: Data)], progress: (Int64) -> Void) async throws(UDRError) -> [String] {
        var packs: [String] = []
        var start = 0
        while start < objects.count {
            var end = start
            var size = 0
            while end < objects.count, end == start || size + objects[end].data.count <= Self.packLimit {
                size += objects[end].data.count
                end += 1
            }
            var body = Data(capacity: size + (end - start) * PackFormat.entrySize + PackFormat.trailerSize)
            var entries: [PackFormat.Entry] = []
            for (id, data) in objects[start..<end] {
                entries.append(PackFormat.Entry(id: id, offset: Int64(body.count), length: Int64(data.count)))
                body.append(data)
            }
            let (name, tail) = PackFormat.tail(entries)
            body.append(tail)
            // A pack and an index already there (the same objects sent
            // before) are as good as new ones.
            _ = try await storage.write("packs/\(name).pack", body, if: .absent)
            _ = try await storage.write("packs/\(name).idx", tail, if: .absent)
            packs.append(name)
            progress(Int64(size))
            start = end
        }
        return packs
    }

    /// Reads objects from their packs (nearby ones in one ranged read,
    /// several reads at once) and checks each against its id. Throws,
    /// naming it, for an object that is missing or damaged.
    func load(_ ids: [ObjectID], index: [ObjectID: Location]) async throws(UDRError) -> [ObjectID: Data] {
        var wanted: [(ObjectID, Location)] = []
        for id in ids {
            guard let location = index[id] else {
                throw UDRError(.missingObject, "the remote \(name) lacks object \(id), which its refs reach; the remote is damaged (run `udr remote verify \(name)`)")
            }
            wanted.append((id, location))
        }
        return try await Self.read(wanted, from: storage, what: "the remote \(name)")
    }

    /// Reads packed objects from `storage` (nearby ones of a pack in one
    /// ranged read, 8 reads at once) and checks each against its id;
    /// `what` names the storage in errors ("the remote origin").
    static func read(_ wanted: [(ObjectID, Location)], from storage: any RemoteStorage, what: String) async throws(UDRError) -> [ObjectID: Data] {
        var loaded: [ObjectID: Data] = [:]
        var byPack: [String: [(ObjectID, Location)]] = [:]
        for (id, location) in wanted { byPack[location.pack, default: []].append((id, location)) }
        // Runs of objects at most 1 MB apart, each read in one request.
        struct Run: Sendable {
            let pack: String
            let range: Range<Int64>
            let objects: [(ObjectID, Location)]
        }
        var runs: [Run] = []
        for (pack, objects) in byPack {
            let sorted = objects.sorted { $0.1.offset < $1.1.offset }
            var current: [(ObjectID, Location)] = []
            var lower: Int64 = 0
            var upper: Int64 = 0
            for item in sorted {
                if !current.isEmpty, item.1.offset - upper > 1 << 20 || upper - lower > 64 << 20 {
                    runs.append(Run(pack: pack, range: lower..<upper, objects: current))
                    current = []
                }
                if current.isEmpty { lower = item.1.offset }
                current.append(item)
                upper = max(upper, item.1.offset + item.1.length)
            }
            if !current.isEmpty { runs.append(Run(pack: pack, range: lower..<upper, objects: current)) }
        }
        var next = 0
        while next < runs.count {
            let wave = Array(runs[next..<min(next + 8, runs.count)])
            next += wave.count
            let results: [Result<Data, UDRError>]
            results = await withTaskGroup(of: (Int, Result<Data, UDRError>).self) { group in
                for (i, run) in wave.enumerated() {
                    group.addTask {
                        do throws(UDRError) {
                            return (i, .success(try await storage.read("packs/\(run.pack).pack", range: run.range)))
                        } catch {
                            return (i, .failure(error))
                        }
                    }
                }
                var out = [Result<Data, UDRError>](repeating: .failure(UDRError(.io, "")), count: wave.count)
                for await (i, result) in group { out[i] = result }
                return out
            }
            for (run, result) in zip(wave, results) {
                let data = try result.get()
                guard data.count == run.range.count else {
                    throw UDRError(.corruptObject, "pack \(run.pack) of \(what) is shorter than its index says; it is damaged")
                }
                for (id, location) in run.objects {
                    let start = Int(location.offset - run.range.lowerBound)
                    let bytes = data.subdata(in: start..<(start + Int(location.length)))
                    let actual = ObjectID.of(bytes)
                    guard actual == id else {
                        throw UDRError(
                            .corruptObject,
                            "object \(id) in pack \(run.pack) of \(what) is damaged: its bytes hash to \(actual). Nothing was read; it needs repair from a good copy (a remote: push to it again; a store: run `udr verify`)."
                        )
                    }
                    loaded[id] = bytes
                }
            }
        }
        return loaded
    }
}
