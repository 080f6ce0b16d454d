import CPython
import Foundation

extension PythonError {
    /// Takes the current Python exception (clearing it) and turns it into strings.
    static func fetch(_ gil: borrowing PythonGIL, code: Code = .exception) -> PythonError {
        fetchRaw(code: code)
    }

    /// ``fetch(_:code:)`` for start-up code that has the GIL but no token yet.
    static func fetchRaw(code: Code = .exception) -> PythonError {
        var type: UnsafeMutablePointer<PyObject>?
        var value: UnsafeMutablePointer<PyObject>?
        var traceback: UnsafeMutablePointer<PyObject>?
        PyErr_Fetch(&type, &value, &traceback)
        guard type != nil else {
            return PythonError(code: code, message: "unknown Python error (no exception was set)")
        }
        PyErr_NormalizeException(&type, &value, &traceback)
        defer {
            type.map(rlm_decref)
            value.map(rlm_decref)
            traceback.map(rlm_decref)
        }
        guard let value else {
            return PythonError(code: code, message: "unknown Python error (no exception value)")
        }
        if let traceback { PyException_SetTraceback(value, traceback) }
        return describe(exception: value, code: code)
    }

    /// Describes an exception object without touching the error indicator.
    static func describe(
        exception value: UnsafeMutablePointer<PyObject>,
        code: Code = .exception
    ) -> PythonError {
        let typeName = String(cString: rlm_type_name(value))
        let shortName = typeName.split(separator: ".").last.map(String.init) ?? typeName
        var message = ""
        if let text = PyObject_Str(value) {
            message = lossyString(text)
            rlm_decref(text)
        } else {
            PyErr_Clear()
            message = "<exception message could not be printed>"
        }
        var formatted = ""
        if let handles = Bootstrap.handles {
            if let text = PyObject_CallOneArg(handles.formatException, value) {
                formatted = lossyString(text)
                rlm_decref(text)
            } else {
                PyErr_Clear()
            }
        }
        return PythonError(code: code, typeName: shortName, message: message, traceback: formatted)
    }
}

/// Converts a `str` to a Swift string, never failing: lone surrogates (which UTF-8 cannot carry)
/// become U+FFFD replacement characters. Returns "" for a non-string.
func lossyString(_ object: UnsafeMutablePointer<PyObject>) -> String {
    guard rlm_is_unicode(object) != 0 else { return "" }
    var size = 0
    if let utf8 = PyUnicode_AsUTF8AndSize(object, &size) {
        return utf8.withMemoryRebound(to: UInt8.self, capacity: size) {
            String(decoding: UnsafeBufferPointer(start: $0, count: size), as: UTF8.self)
        }
    }
    PyErr_Clear()
    guard let bytes = PyUnicode_AsEncodedString(object, "utf-8", "surrogatepass") else {
        PyErr_Clear()
        return ""
    }
    defer { rlm_decref(bytes) }
    let count = PyBytes_Size(bytes)
    guard let base = PyBytes_AsString(bytes) else { return "" }
    return base.withMemoryRebound(to: UInt8.self, capacity: count) {
        String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
    }
}

extension PythonError {
    /// Opens `path` read-only (close-on-exec); a failure is a conversion error of type `OSError`
    /// naming the path.
    static func openForReading(_ path: String) throws -> Int32 {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw PythonError(code: .conversion, typeName: "OSError", message: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        return descriptor
    }
}
