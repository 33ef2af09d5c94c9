import DuckDB
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

    /// The path of a file of the segment's live rows, rebuilding it from
    /// the object store (every blob and the whole file checked) when it is
    /// not cached; `created` tells whether it was rebuilt. A segment with
    /// deletions reads as a file of its rows less the deleted ones, written
    /// by DuckDB on `connection` beside the segment's own file.
    func materialize(_ segment: SegmentRef, store: any ObjectStore, connection: Connection) throws(UDRError) -> (path: String, created: Bool) {
        let whole = try materializeFile(segment, store: store)
        guard segment.deletions != nil else { return whole }
        let target = directory.path + "/" + segment.content.name + ".parquet"
        if access(target, R_OK) == 0 { return (target, whole.created) }
        let list = try store.deletedPositions(of: segment).map(String.init).joined(separator: ", ")
        let temp = target + "." + UUID().uuidString + ".tmp"
        do {
            try connection.execute(
                """
                COPY (SELECT * EXCLUDE (file_row_number) FROM read_parquet(\(quoteLiteral(whole.path)), file_row_number = true)
                      WHERE file_row_number NOT IN (\(list)))
                TO \(quoteLiteral(temp)) (FORMAT parquet, COMPRESSION lz4_raw\(SegmentStorage.copyOptions(from: [segment])))
                """)
        } catch {
            unlink(temp)
            throw UDRError(.io, "cannot write the live rows of segment \(segment.id): \(error.message)", underlying: error)
        }
        if rename(temp, target) != 0 { unlink(temp) }
        return (target, true)
    }

    /// The path of the segment's own file, rebuilt from its blobs when
    /// it is not cached.
    func materializeFile(_ segment: SegmentRef, store: any ObjectStore) throws(UDRError) -> (path: String, created: Bool) {
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

    /// The path of a file holding one stored object (a change record's
    /// Parquet file), written from the store (and checked) when it is not cached.
    func materializeObject(_ id: ObjectID, store: any ObjectStore) throws(UDRError) -> String {
        let target = path(id)
        if access(target, R_OK) == 0 { return target }
        let temp = target + "." + UUID().uuidString + ".tmp"
        try LocalObjectStore.writeFile(temp, try store.get(id))
        if rename(temp, target) != 0 { unlink(temp) }
        return target
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
