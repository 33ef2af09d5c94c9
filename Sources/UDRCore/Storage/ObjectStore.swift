import Foundation

/// Content-addressed storage of immutable objects. An object's id is the
/// BLAKE3 hash of its bytes; reads check it. Writers never coordinate: an
/// object stored already is not written again, and each store's GC
/// protocol (see ``collect(roots:liveWriters:dryRun:)``) keeps such an
/// object for the writer that counted on it.
public protocol ObjectStore: Sendable {
    /// Whether an object is present (its bytes are not checked).
    func contains(_ id: ObjectID) throws(UDRError) -> Bool
    /// The object's bytes, checked against its id.
    func get(_ id: ObjectID) throws(UDRError) -> Data
    /// Several objects' bytes, in order, each checked (a store may read
    /// neighbours in one request).
    func get(many ids: [ObjectID]) throws(UDRError) -> [Data]
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
    /// The objects of `ids` stored already that a writer (holding a write
    /// lease or an open transaction) may count on without storing them
    /// again: GC keeps them for it. The rest it must store.
    func reusable(_ ids: [ObjectID]) throws(UDRError) -> Set<ObjectID>
    /// Collects garbage: deletes objects outside the sets `roots` gives
    /// (asked when the store's protocol needs them, so that it can order
    /// its own steps around them), except those written at or after the
    /// cutoff, and what interrupted writers left behind. `liveWriters`
    /// names the write leases and transactions live at the instant it is
    /// asked. Safe beside writers and readers.
    func collect(
        roots: () throws(UDRError) -> GarbageRoots, liveWriters: () throws(UDRError) -> Set<String>, dryRun: Bool
    ) throws(UDRError) -> CollectedGarbage
    /// What the store finds wrong with its own files beyond single objects
    /// (a pack whose index is damaged), for `verify`.
    func problems() throws(UDRError) -> [String]
}

/// What GC keeps (see ``ObjectStore/collect(roots:liveWriters:dryRun:)``).
public struct GarbageRoots: Sendable {
    /// What retained commits, refs and live writes reach.
    public let reachable: Set<ObjectID>
    /// Unreachable objects kept anyway (commits expired within the grace
    /// period reach them: readers may still read them).
    public let spared: Set<ObjectID>
    /// Objects written at or after this are kept: the grace period, and
    /// the oldest live write.
    public let cutoff: Date

    public init(reachable: Set<ObjectID>, spared: Set<ObjectID>, cutoff: Date) {
        self.reachable = reachable
        self.spared = spared
        self.cutoff = cutoff
    }

    func keeps(_ id: ObjectID) -> Bool { reachable.contains(id) || spared.contains(id) }
}

/// What a store's GC found and freed.
public struct CollectedGarbage: Sendable {
    public var scanned = 0
    public var deleted = 0
    public var freed: Int64 = 0
    /// Garbage kept for now: younger than the cutoff, or waiting for the
    /// writers that might count on it to end.
    public var waiting = 0
    public var waitingBytes: Int64 = 0
    /// Bytes of what interrupted writers left behind.
    public var abandonedBytes: Int64 = 0

    public init() {}
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
    public func get(many ids: [ObjectID]) throws(UDRError) -> [Data] {
        var out: [Data] = []
        out.reserveCapacity(ids.count)
        for id in ids { out.append(try get(id)) }
        return out
    }

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
