/// An error from loading DuckDB or from DuckDB itself. DuckDB's own message
/// is passed through unchanged in ``message``.
public struct DuckDBError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case runtimeMissing, symbolMissing, open, connect, query, prepare, bind, interrupted, arrow
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// No DuckDB library could be loaded.
        public static let runtimeMissing = Code(.runtimeMissing)
        /// The library lacks a C API function UDR needs.
        public static let symbolMissing = Code(.symbolMissing)
        public static let open = Code(.open)
        public static let connect = Code(.connect)
        /// DuckDB rejected or failed a query; ``DuckDBError/message`` is DuckDB's.
        public static let query = Code(.query)
        public static let prepare = Code(.prepare)
        public static let bind = Code(.bind)
        public static let interrupted = Code(.interrupted)
        public static let arrow = Code(.arrow)

        public var description: String { "\(base)" }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
