import DuckDB
import Foundation

/// Interrupts the query a cancelled task waits for: the query runs on a
/// connection of its own thread (see ``Repository/blocking(_:)``), which
/// Swift's task cancellation does not reach, so cancelling fires DuckDB's
/// interrupt on that connection. A cancel before the query starts stops it
/// from starting; one after it ends does nothing (the connection may serve
/// another read by then).
final class QueryInterrupt: @unchecked Sendable {
    // @unchecked: `running` and `cancelled` are only touched under `lock`.
    private let lock = NSLock()
    private var running: InterruptHandle?
    private var cancelled = false

    /// Runs `body` (a query on `connection`), interruptible by ``cancel()``.
    func run<T>(on connection: Connection, _ body: () throws(UDRError) -> T) throws(UDRError) -> T {
        lock.lock()
        guard !cancelled else {
            lock.unlock()
            throw Self.error
        }
        running = connection.interruptHandle
        lock.unlock()
        defer {
            lock.lock()
            running = nil
            lock.unlock()
        }
        do { return try body() } catch where error.underlying.map({ ($0 as? DuckDBError)?.code == .interrupted }) == true || isCancelled {
            throw Self.error
        }
    }

    func cancel() {
        lock.lock()
        cancelled = true
        running?.interrupt()
        lock.unlock()
    }

    private var isCancelled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return cancelled
    }

    static let error = UDRError(.interrupted, "the query was interrupted")
}

extension Repository {
    /// Runs blocking work (a query, through `interrupt`) so that cancelling
    /// the calling task interrupts it.
    func interruptibly<T: Sendable>(_ work: @escaping @Sendable (QueryInterrupt) throws(UDRError) -> T) async throws(UDRError) -> T {
        let interrupt = QueryInterrupt()
        let outcome: Result<T, UDRError> = await withTaskCancellationHandler {
            do throws(UDRError) { return .success(try await blocking { () throws(UDRError) -> T in try work(interrupt) }) } catch {
                return .failure(error)
            }
        } onCancel: {
            interrupt.cancel()
        }
        return try outcome.get()
    }
}
