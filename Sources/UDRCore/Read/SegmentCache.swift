import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Materialized segments: Parquet files DuckDB can read, named by segment
/// id, rebuilt from their blobs on first use and checked against the id.
/// Bounded: when the files exceed ``limitBytes`` the least recently
/// materialized ones are removed.
public struct SegmentCache: Sendable {
    public let directory: URL
    public var limitBytes: Int64

    public init(directory: URL, limitBytes: Int64 = 20 << 30) throws(UDRError) {
        self.directory = directory
        self.limitBytes = limitBytes
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw UDRError(.io, "cannot create the segment cache \(directory.path): \(error.localizedDescription)")
        }
    }

    public func path(_ segment: ObjectID) -> String { directory.path + "/" + segment.hex + ".parquet" }

    /// Takes ownership of a freshly written segment file.
    func adopt(file: String, segment: ObjectID) {
        let target = path(segment)
        if access(target, F_OK) == 0 || rename(file, target) != 0 { unlink(file) }
    }

    /// The path of the segment's file, rebuilding it from the object store
    /// (every blob and the whole file checked) when it is not cached;
    /// `created` tells whether it was rebuilt.
    func materialize(_ segment: SegmentRef, store: any ObjectStore) throws(UDRError) -> (path: String, created: Bool) {
        let target = path(segment.id)
        if access(target, R_OK) == 0 { return (target, false) }
        let recipe = try store.getJSON(SegmentRecipe.self, segment.recipe)
        var bytes = Data()
        bytes.reserveCapacity(Int(recipe.bytes))
        for part in recipe.parts { bytes.append(try store.get(part.blob)) }
        let actual = ObjectID.of(bytes)
        guard actual == segment.id, recipe.segment == segment.id else {
            throw UDRError(
                .corruptObject,
                "segment \(segment.id) rebuilt from its blobs hashes to \(actual). The repository is damaged; run `udr verify`.")
        }
        let temp = target + "." + UUID().uuidString + ".tmp"
        try LocalObjectStore.writeFile(temp, bytes)
        if rename(temp, target) != 0 { unlink(temp) }
        return (target, true)
    }

    /// Removes the oldest files until the cache fits its limit, sparing
    /// the files in `keeping` (paths).
    func evictIfNeeded(keeping keep: Set<String> = []) {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory.path) else { return }
        var files: [(String, Int64, Double)] = []
        var total: Int64 = 0
        for name in names where name.hasSuffix(".parquet") {
            var info = stat()
            let p = directory.path + "/" + name
            guard stat(p, &info) == 0 else { continue }
            let size = Int64(info.st_size)
            total += size
            files.append((p, size, Double(info.st_mtim.tv_sec)))
        }
        guard total > limitBytes else { return }
        for (p, size, _) in files.sorted(by: { $0.2 < $1.2 }) where !keep.contains(p) {
            unlink(p)
            total -= size
            if total <= limitBytes { break }
        }
    }
}
