import Dispatch
import Foundation

/// Step timings on stderr when `UDR_TRACE` is set.
struct StepClock {
    static let enabled = ProcessInfo.processInfo.environment["UDR_TRACE"] != nil
    var last = DispatchTime.now().uptimeNanoseconds

    mutating func step(_ name: String) {
        guard Self.enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        FileHandle.standardError.write(Data(String(format: "udr trace: %@ %.1f ms\n", name, Double(now - last) / 1e6).utf8))
        last = now
    }
}
