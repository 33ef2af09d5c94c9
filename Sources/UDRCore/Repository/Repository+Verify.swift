import Foundation

/// The result of `verify`: every problem found, each naming the object,
/// commit or table it concerns.
public struct VerifyReport: Sendable, Codable {
    public let objectsChecked: Int
    public let commitsChecked: Int
    /// Files of the local segment cache re-hashed.
    public let cacheFilesChecked: Int
    /// Damaged cache files removed (`repair`); reads rebuild them from the objects.
    public let cacheFilesRemoved: [String]
    public let problems: [String]
    public var ok: Bool { problems.isEmpty }
}

extension Repository {
    /// Re-hashes every object and every file of the local segment cache,
    /// and checks that every branch, commit, manifest, recipe and blob
    /// resolves. With `repair`, damaged cache files are removed (reads
    /// rebuild them from the objects) and are no longer problems; damaged
    /// or missing objects cannot be repaired here.
    public func verify(repair: Bool = false) async throws(UDRError) -> VerifyReport {
        try await blocking { () throws(UDRError) -> VerifyReport in
            var problems = try self.store.problems()
            let cache = self.cache.damagedFiles()
            var removed: [String] = []
            for (path, why) in cache.damaged {
                if repair {
                    self.cache.remove(path)
                    removed.append(path)
                } else {
                    problems.append("the cached file \(path) is damaged: \(why); `udr verify --repair` removes it, and reads rebuild it")
                }
            }
            let ids = try self.store.list()
            var corrupt = Set<ObjectID>()
            for id in ids {
                let data = try self.store.getUnchecked(id)
                let actual = ObjectID.of(data)
                if actual != id {
                    corrupt.insert(id)
                    problems.append("object \(id) is corrupt: its bytes hash to \(actual)")
                }
            }
            let present = Set(ids)
            func check(_ id: ObjectID, _ what: String) -> Bool {
                if !present.contains(id) {
                    // A shallow clone's older segments are on its remote.
                    if (try? self.isPromised(id)) == true { return false }
                    problems.append("\(what) \(id) is missing")
                    return false
                }
                return !corrupt.contains(id)
            }
            var checkedManifests = Set<ObjectID>()
            var checkedObjects = Set<ObjectID>()
            let commits = try self.catalog.allCommitRecords()
            for record in commits {
                guard check(record.id, "commit (tx \(record.txID))") else { continue }
                let commit: Commit
                do throws(UDRError) { commit = try self.commit(record.id) } catch {
                    problems.append(error.message)
                    continue
                }
                for parent in commit.parents where try self.catalog.commitRecord(parent) == nil {
                    if try self.catalog.isExpired(parent) { continue }
                    problems.append("commit \(record.id) names parent \(parent), which the catalog does not know")
                }
                for (table, entry) in commit.tables where !checkedManifests.contains(entry.manifest) {
                    checkedManifests.insert(entry.manifest)
                    guard check(entry.manifest, "manifest of \(table) v\(entry.version)") else { continue }
                    let manifest: Manifest
                    do throws(UDRError) { manifest = try self.manifest(entry.manifest) } catch {
                        problems.append(error.message)
                        continue
                    }
                    if let record = manifest.changes?.object, checkedObjects.insert(record).inserted {
                        _ = check(record, "change record of \(table) v\(entry.version)")
                    }
                    for segment in manifest.segments {
                        if let deletions = segment.deletions?.object, checkedObjects.insert(deletions).inserted {
                            let what = "deletions of segment \(segment.id) (\(table) v\(entry.version))"
                            if check(deletions, what) {
                                do throws(UDRError) { _ = try self.store.deletedPositions(of: segment) } catch {
                                    problems.append("\(what): \(error.message)")
                                }
                            }
                        }
                        guard checkedObjects.insert(segment.recipe).inserted else { continue }
                        guard check(segment.recipe, "recipe of segment \(segment.id) (\(table) v\(entry.version))") else { continue }
                        do throws(UDRError) {
                            let recipe = try self.store.getJSON(SegmentRecipe.self, segment.recipe)
                            for part in recipe.parts { _ = check(part.blob, "blob of segment \(segment.id) (\(table) v\(entry.version))") }
                        } catch {
                            problems.append(error.message)
                        }
                    }
                }
            }
            for (branch, head) in try self.catalog.branches() where try self.catalog.commitRecord(head) == nil {
                problems.append("branch \(branch) points at \(head), which is not a known commit")
            }
            return VerifyReport(
                objectsChecked: ids.count, commitsChecked: commits.count, cacheFilesChecked: cache.checked, cacheFilesRemoved: removed,
                problems: problems)
        }
    }
}
