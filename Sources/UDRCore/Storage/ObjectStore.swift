import Foundation

/// Content-addressed storage of immutable objects. An object's id is the
/// BLAKE3 hash of its bytes; reads check it. Writing an object that exists
/// only refreshes its modification time (so GC spares it), so writers never
/// coordinate.
public protocol ObjectStore: Sendable {
    /// Whether an object is present (its bytes are not checked).
    func contains(_ id: ObjectID) throws(UDRError) -> Bool
    /// The object's bytes, checked against its id.
    func get(_ id: ObjectID) throws(UDRError) -> Data
    /// The object's bytes as stored, not checked (for `verify`).
    func getUnchecked(_ id: ObjectID) throws(UDRError) -> Data
    /// The object's size, or nil when absent.
    func size(_ id: ObjectID) throws(UDRError) -> Int64?
    /// Stores objects durably under ids the caller has just computed (each
    /// must be the BLAKE3 of its bytes); returns the bytes newly added
    /// (objects already present cost nothing). Either an object is complete
    /// under its id or it is not visible at all.
    func put(hashed objects: [(id: ObjectID, data: Data)]) throws(UDRError) -> Int64
    /// A batch for a writer that produces many objects over time: they are
    /// stored as they come and become visible together when it commits.
    func batch() -> any ObjectBatch
    /// Every object id.
    func list() throws(UDRError) -> [ObjectID]
    /// When the object was last written, or last stored again by a writer
    /// that found it present (nil when absent). GC spares recent objects.
    func modificationTime(_ id: ObjectID) throws(UDRError) -> Date?
    /// Deletes objects, each unless it was written or stored again at or
    /// after `cutoff` (checked after it is out of readers' and writers'
    /// reach, so a writer storing it concurrently keeps it). Returns how
    /// many objects went and the bytes freed.
    func delete(_ ids: [ObjectID], unlessModifiedSince cutoff: Date) throws(UDRError) -> (objects: Int, bytes: Int64)
    /// What the store finds wrong with its own files beyond single objects
    /// (a pack whose index is damaged), for `verify`.
    func problems() throws(UDRError) -> [String]
    /// Removes what interrupted writers left behind (temporary files and
    /// directories) last touched before `cutoff`; returns the bytes freed
    /// (or that would be, with `dryRun`).
    func removeAbandoned(before cutoff: Date, dryRun: Bool) throws(UDRError) -> Int64
}

/// Objects a writer stores as it produces them (ids computed by the
/// caller, as for ``ObjectStore/put(hashed:)``). None is visible before
/// ``commit()``; a batch dropped without committing leaves nothing behind.
public protocol ObjectBatch: AnyObject {
    /// Adds objects; those already stored only have their time refreshed.
    func add(_ objects: [(id: ObjectID, data: Data)]) throws(UDRError)
    /// Makes the added objects durable and visible; returns the bytes of
    /// the objects that were not stored before.
    func commit() throws(UDRError) -> Int64
}

extension ObjectStore {
    /// Stores objects durably; returns their ids and the bytes newly added.
    public func put(_ objects: [Data]) throws(UDRError) -> (ids: [ObjectID], bytesAdded: Int64) {
        let ids = objects.map { ObjectID.of($0) }
        return (ids, try put(hashed: Array(zip(ids, objects)).map { (id: $0.0, data: $0.1) }))
    }

    /// Stores one object.
    @discardableResult
    public func put(_ data: Data) throws(UDRError) -> ObjectID {
        try put([data]).ids[0]
    }

    /// Stores a value as canonical JSON.
    public func putJSON<T: Encodable>(_ value: T) throws(UDRError) -> (id: ObjectID, bytesAdded: Int64) {
        let data = try ObjectCoding.encode(value)
        let result = try put([data])
        return (result.ids[0], result.bytesAdded)
    }

    public func getJSON<T: Decodable>(_ type: T.Type, _ id: ObjectID) throws(UDRError) -> T {
        try ObjectCoding.decode(type, from: get(id), id: id)
    }

    /// The positions of a segment's deleted rows (none without deletions),
    /// checked to be the segment's own list.
    func deletedPositions(of segment: SegmentRef) throws(UDRError) -> [Int64] {
        guard let deletions = segment.deletions else { return [] }
        let deleted = try getJSON(DeletedRows.self, deletions.object)
        guard deleted.segment == segment.id, Int64(deleted.positions.count) == deletions.count else {
            throw UDRError(
                .corruptObject,
                "the deletions \(deletions.object) list \(deleted.positions.count) rows of segment \(deleted.segment), not \(deletions.count) rows of segment \(segment.id). The repository is damaged; run `udr verify`."
            )
        }
        return deleted.positions
    }
}
