import CRLMProcess
import Foundation

/// Starts worker processes from one thread that lives as long as the process.
///
/// A worker dies with the *thread* that started it (`PR_SET_PDEATHSIG` follows the parent
/// thread, not the process). Started from a cooperative pool thread, which the pool ends when
/// idle, a worker was killed in the middle of its run; started from here, it dies only with
/// the host.
enum WorkerSpawner {
    private static let condition = NSCondition()
    nonisolated(unsafe) private static var requests: [@Sendable () -> Void] = []
    /// Started once, on first use.
    private static let started: Bool = {
        let thread = Thread {
            while true {
                condition.lock()
                while requests.isEmpty { condition.wait() }
                let request = requests.removeFirst()
                condition.unlock()
                request()
            }
        }
        thread.name = "rlm.worker.spawner"
        thread.start()
        return true
    }()

    /// Runs `rlm_spawn` on the spawner thread; returns the process id or throws an errno message.
    static func spawn(_ executable: String, arguments: [String], channel: Int32) async throws -> pid_t {
        _ = started
        return try await withCheckedThrowingContinuation { continuation in
            condition.withLock {
                requests.append {
                    var pid: pid_t = 0
                    let error = withCStrings(arguments) { strings -> Int32 in
                        var argv = strings.map { UnsafeMutablePointer(mutating: $0) }
                        argv.append(nil)
                        return argv.withUnsafeBufferPointer { buffer in
                            buffer.baseAddress.map { rlm_spawn(executable, $0, channel, &pid) } ?? EINVAL
                        }
                    }
                    if error == 0 {
                        continuation.resume(returning: pid)
                    } else {
                        continuation.resume(throwing: PythonError(
                            code: .initialization, message: "could not start \(executable): \(String(cString: strerror(error)))"))
                    }
                }
                condition.signal()
            }
        }
    }
}
