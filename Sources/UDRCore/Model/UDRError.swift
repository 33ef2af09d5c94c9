/// An error a UDR user can act on: what went wrong and, where it helps, what
/// to do. ``underlying`` keeps the original error (DuckDB's, SQLite's, the
/// file system's).
public struct UDRError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case invalidArgument, invalidName, notARepository, alreadyExists, notFound
            case invalidInput, duplicateKey, nullKey, query, corruptObject, missingObject
            case conflict, transaction, unsupportedType, io, catalog, runtime, readOnly, interrupted, credentials, unreachable
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        public static let invalidArgument = Code(.invalidArgument)
        /// A table name that breaks the naming rules.
        public static let invalidName = Code(.invalidName)
        public static let notARepository = Code(.notARepository)
        public static let alreadyExists = Code(.alreadyExists)
        /// An unknown table, version, commit or file.
        public static let notFound = Code(.notFound)
        /// An input file that cannot be read (truncated, ragged, wrong format).
        public static let invalidInput = Code(.invalidInput)
        public static let duplicateKey = Code(.duplicateKey)
        public static let nullKey = Code(.nullKey)
        /// DuckDB rejected the SQL.
        public static let query = Code(.query)
        /// An object whose bytes do not hash to its id.
        public static let corruptObject = Code(.corruptObject)
        public static let missingObject = Code(.missingObject)
        /// The branch head moved and the commit could not be rebased.
        public static let conflict = Code(.conflict)
        /// An unknown, aborted, expired or already committed transaction,
        /// or a transaction begun inside another.
        public static let transaction = Code(.transaction)
        public static let unsupportedType = Code(.unsupportedType)
        public static let io = Code(.io)
        public static let catalog = Code(.catalog)
        /// The DuckDB runtime is missing or broken.
        public static let runtime = Code(.runtime)
        /// SQL that would write, given to a read (`query`), or a write at a
        /// pinned version.
        public static let readOnly = Code(.readOnly)
        /// Its caller cancelled a running query (Ctrl-C in Python, a client
        /// that went away).
        public static let interrupted = Code(.interrupted)
        /// Credentials for a remote store are missing, or the store refused them.
        public static let credentials = Code(.credentials)
        /// A remote store did not answer (no connection, timed out, retries spent).
        public static let unreachable = Code(.unreachable)

        public var description: String { "\(base)" }
    }

    public let code: Code
    public let message: String
    public let underlying: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String { message }
}
