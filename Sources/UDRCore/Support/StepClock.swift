import Dispatch
import Foundation

/// Step timings on stderr when `UDR_TRACE` is set: each step's wall time
/// and the process's CPU time in it (all threads, DuckDB's included).
struct StepClock {
    static let enabled = ProcessInfo.processInfo.environment["UDR_TRACE"] != nil
    var last = DispatchTime.now().uptimeNanoseconds
    var lastCPU = StepClock.cpuNanoseconds()

    mutating func step(_ name: String) {
        guard Self.enabled else { return }
        let (now, cpu) = (DispatchTime.now().uptimeNanoseconds, Self.cpuNanoseconds())
        FileHandle.standardError.write(
            Data(String(format: "udr trace: %@ %.1f ms (cpu %.1f ms)\n", name, Double(now - last) / 1e6, Double(cpu - lastCPU) / 1e6).utf8))
        (last, lastCPU) = (now, cpu)
    }

    static func cpuNanoseconds() -> UInt64 {
        guard enabled else { return 0 }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func ns(_ t: timeval) -> UInt64 { UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_usec) * 1000 }
        return ns(usage.ru_utime) + ns(usage.ru_stime)
    }
}
