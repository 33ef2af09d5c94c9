import Foundation
import Logging
import UDRCore

/// The embedded default: a repository in a local directory, with a local
/// object store and a SQLite catalog, both under `PATH/.udr/`.
public enum LocalRepository {
    /// Creates a repository at `path` (the directory is created if needed).
    public static func create(at path: URL, configuration: Repository.Configuration = .init(), logger: Logger = Logger(label: "udr"))
        throws(UDRError) -> Repository
    {
        let layout = RepositoryLayout(root: path)
        if FileManager.default.fileExists(atPath: layout.formatFile.path) {
            throw UDRError(.alreadyExists, "\(path.path) already holds a UDR repository")
        }
        do {
            try FileManager.default.createDirectory(at: layout.metadata, withIntermediateDirectories: true)
        } catch {
            throw UDRError(.io, "cannot create \(layout.metadata.path): \(error.localizedDescription)")
        }
        _ = try LocalObjectStore(root: layout.metadata)
        _ = try SQLiteCatalog(path: layout.catalogFile.path, create: true)
        // The FORMAT file is written last: its presence marks a complete repository.
        let format = "udr repository\nformat \(RepositoryLayout.formatVersion)\n"
        do { try Data(format.utf8).write(to: layout.formatFile, options: .atomic) } catch {
            throw UDRError(.io, "cannot write \(layout.formatFile.path): \(error.localizedDescription)")
        }
        return try open(layout, configuration: configuration, logger: logger)
    }

    /// Opens the repository at `path`, or the one containing it.
    public static func open(at path: URL, configuration: Repository.Configuration = .init(), logger: Logger = Logger(label: "udr"))
        throws(UDRError) -> Repository
    {
        try open(RepositoryLayout.discover(from: path), configuration: configuration, logger: logger)
    }

    /// Clones the remote at `location` into a new repository at `path`
    /// (see ``Repository/becomeClone(of:branch:depth:progress:)``). On
    /// failure nothing is left at `path`.
    public static func clone(
        _ location: RemoteLocation, into path: URL, branch: String? = nil, depth: Int? = nil, configuration: Repository.Configuration = .init(),
        logger: Logger = Logger(label: "udr"), progress: SyncProgress? = nil
    ) async throws(UDRError) -> (Repository, SyncReport) {
        let existed = FileManager.default.fileExists(atPath: path.path)
        if existed, !((try? FileManager.default.contentsOfDirectory(atPath: path.path)) ?? []).isEmpty {
            throw UDRError(.alreadyExists, "\(path.path) exists and is not empty; clone into a new directory")
        }
        let location = try location.absolute()
        let repo = try create(at: path, configuration: configuration, logger: logger)
        do {
            let report = try await repo.becomeClone(of: location, branch: branch, depth: depth, progress: progress)
            return (repo, report)
        } catch {
            if existed {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: path.path)) ?? [] {
                    try? FileManager.default.removeItem(at: path.appendingPathComponent(name))
                }
            } else {
                try? FileManager.default.removeItem(at: path)
            }
            throw error
        }
    }

    static func open(_ layout: RepositoryLayout, configuration: Repository.Configuration, logger: Logger) throws(UDRError) -> Repository {
        let store = try LocalObjectStore(root: layout.metadata)
        let catalog = try SQLiteCatalog(path: layout.catalogFile.path)
        return try Repository(layout: layout, store: store, catalog: catalog, configuration: configuration, logger: logger)
    }
}
