import CPython
import CRLMSandbox
import Foundation

extension PythonObject {
    /// A read-only `mmap.mmap` of a whole file: its pages are the page cache's, read as code
    /// touches them, so a file larger than memory costs no anonymous memory. An empty file gives
    /// `b""` (`mmap` cannot map nothing). The mapping is Python's: it lasts as long as the object
    /// or a `memoryview` of it, and closing it only makes later reads raise `ValueError`.
    ///
    /// Throws ``PythonError/Code/conversion`` (type `OSError`) for a file that cannot be opened
    /// or mapped, or is not a regular file.
    public static func mapping(contentsOfFile path: String, _ gil: borrowing PythonGIL) throws -> PythonObject {
        let descriptor = try PythonError.openForReading(path)
        defer { close(descriptor) }
        return try mapping(descriptor: descriptor, describedAs: path, gil)
    }

    /// A read-only `mmap.mmap` of the whole of an open file (see ``mapping(contentsOfFile:_:)``).
    /// The mapping holds a duplicate of `descriptor`: the caller may close its own.
    static func mapping(descriptor: Int32, describedAs path: String, _ gil: borrowing PythonGIL) throws -> PythonObject {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw PythonError(code: .conversion, typeName: "OSError", message: "cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw PythonError(code: .conversion, typeName: "OSError", message: "cannot map \(path): it is not a regular file")
        }
        if status.st_size == 0 { return try checked(PyBytes_FromStringAndSize(nil, 0), gil) }
        // Host code mapping a descriptor the host opened: the sandbox's audit hook, which turns
        // away model code's use of descriptors it did not open, is not asked.
        let outer = rlm_sandbox_enter(nil)
        defer {
            if let mine = rlm_sandbox_enter(outer) { rlm_sandbox_policy_release(mine) }
            if let outer { rlm_sandbox_policy_release(outer) }
        }
        do {
            let module = try checked(PyImport_ImportModule("mmap"), gil)
            return try module.attribute("mmap", gil).call(
                [try Int(descriptor).makePythonObject(gil), try 0.makePythonObject(gil)],
                keywords: ["access": try module.attribute("ACCESS_READ", gil)], gil)
        } catch let error as PythonError {
            throw PythonError(code: .conversion, typeName: "OSError", message: "cannot map \(path): \(error.message)")
        }
    }
}
