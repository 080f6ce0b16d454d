import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The command's standard output, taken at start so that only the result reaches it.
///
/// ``take()`` duplicates descriptor 1 to a private close-on-exec descriptor and points
/// descriptor 1 at standard error: whatever else writes to "stdout" afterwards (model code, a
/// library, a child process) lands on stderr, where a user still sees it, and the result written
/// through ``write(_:)`` is the only thing a pipe or `$(rlm run …)` receives.
package final class SecuredOutput: Sendable {
    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Secures descriptor 1. Also ignores SIGPIPE, so that a closed reader is a write error
    /// (reported, exit 1) rather than a silent death.
    package static func take() throws -> SecuredOutput {
        signal(SIGPIPE, SIG_IGN)
        let descriptor = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3)
        guard descriptor >= 0 else {
            throw OutputError(message: "standard output is not open (\(String(cString: strerror(errno))))")
        }
        fflush(nil)
        guard dup2(STDERR_FILENO, STDOUT_FILENO) >= 0 else {
            throw OutputError(message: "could not redirect standard output (\(String(cString: strerror(errno))))")
        }
        return SecuredOutput(descriptor: descriptor)
    }

    /// Writes `text` and a newline, all of it, or throws.
    package func writeLine(_ text: String) throws {
        let bytes = Array((text + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                Glibc.write(descriptor, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw OutputError(message: "could not write the answer to standard output: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    package struct OutputError: Error, CustomStringConvertible {
        package var message: String
        package var description: String { message }
    }
}
