import Foundation
import Logging
import UDRCore

/// The embedded default: a repository in a local directory, with a SQLite
/// catalog under `PATH/.udr/` and its objects there too, or in an object
/// store of their own (S3, or a directory: see ``PackedObjectStore``)
/// that `PATH/.udr/store.json` names.
public enum LocalRepository {
    /// Creates a repository at `path` (the directory is created if
    /// needed), its objects in `store` when given (an empty location of
    /// its own; opened with the configuration's `remoteStorage`).
    public static func create(
        at path: URL, store: RemoteLocation? = nil, configuration: Repository.Configuration = .init(), logger: Logger = Logger(label: "udr")
    )
        throws(UDRError) -> Repository
    {
        let layout = RepositoryLayout(root: path)
        if FileManager.default.fileExists(atPath: layout.formatFile.path) {
            throw UDRError(.alreadyExists, "\(path.path) already holds a UDR repository")
        }
        let existed = FileManager.default.fileExists(atPath: layout.metadata.path)
        do {
            try FileManager.default.createDirectory(at: layout.metadata, withIntermediateDirectories: true)
        } catch {
            throw UDRError(.io, "cannot create \(layout.metadata.path): \(error.localizedDescription)")
        }
        if let store {
            do throws(UDRError) {
                let location = try store.absolute()
                if case .directory(let directory) = try location.kind() {
                    do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
                        throw UDRError(.io, "cannot create the object store directory \(directory): \(error.localizedDescription)")
                    }
                }
                _ = try PackedObjectStore.open(
                    try configuration.remoteStorage(location), cache: layout.storeCacheDirectory, creating: true)
                do { try JSONEncoder().encode(location).write(to: layout.storeFile, options: .atomic) } catch {
                    throw UDRError(.io, "cannot write \(layout.storeFile.path): \(error.localizedDescription)")
                }
            } catch {
                if !existed { try? FileManager.default.removeItem(at: layout.metadata) }
                throw error
            }
        } else {
            _ = try LocalObjectStore(root: layout.metadata)
        }
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
        let store: any ObjectStore
        if let named = FileManager.default.contents(atPath: layout.storeFile.path) {
            guard let location = try? JSONDecoder().decode(RemoteLocation.self, from: named) else {
                throw UDRError(.invalidInput, "\(layout.storeFile.path) does not name an object store; the repository's configuration is damaged")
            }
            store = try PackedObjectStore.open(try configuration.remoteStorage(location), cache: layout.storeCacheDirectory, creating: false)
        } else {
            store = try LocalObjectStore(root: layout.metadata)
        }
        let catalog = try SQLiteCatalog(path: layout.catalogFile.path)
        return try Repository(layout: layout, store: store, catalog: catalog, configuration: configuration, logger: logger)
    }
}
