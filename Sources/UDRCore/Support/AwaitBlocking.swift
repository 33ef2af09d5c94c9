import Foundation

/// Runs async work from synchronous code on a thread that may block (a
/// repository's work queue, never the cooperative pool) and waits for it.
/// The work runs on the concurrency runtime's threads, so the wait cannot
/// starve it.
func awaitBlocking<T: Sendable>(_ work: @escaping @Sendable () async throws(UDRError) -> T) throws(UDRError) -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do throws(UDRError) {
            let value = try await work()
            box.result = Result<T, UDRError>.success(value)
        } catch {
            box.result = Result<T, UDRError>.failure(error)
        }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

/// Written once by a task before it signals, read by the waiter after.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, UDRError>?
}
