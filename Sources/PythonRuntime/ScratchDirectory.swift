import Foundation

/// The private directories REPLs may write (`rlm-repl-UUID`, mode 0700), made and removed the
/// same way by the engine (in-process REPLs) and the worker pool (warm workers).
package enum ScratchDirectory {
    /// A new directory under `parent`, or why it could not be made.
    ///
    /// mkdir(2) itself: FileManager's createDirectory resolves every component of the path first
    /// (a dozen system calls), which a server opening REPLs all day pays each time.
    package static func make(in parent: String) -> Result<String, Failure> {
        let path = (parent as NSString).appendingPathComponent("rlm-repl-\(UUID().uuidString)")
        guard mkdir(path, 0o700) == 0 else { return .failure(Failure(path: path, reason: String(cString: strerror(errno)))) }
        return .success(path)
    }

    /// Removes a directory: with one rmdir(2) when the code left it empty (the usual case), else
    /// with everything in it.
    package static func remove(_ path: String) {
        if rmdir(path) != 0 { try? FileManager.default.removeItem(atPath: path) }
    }

    /// A directory that could not be made, and the system's reason.
    package struct Failure: Error {
        package var path: String
        package var reason: String
    }
}
