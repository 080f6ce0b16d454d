import CPython
import Foundation

/// A Swift value that can become a Python object.
public protocol PythonConvertible {
    /// Creates a new Python object for the value.
    func makePythonObject(_ gil: borrowing PythonGIL) throws -> PythonObject
}

/// A Swift value that can be read from a Python object.
public protocol ConvertibleFromPython {
    /// Reads the value, throwing ``PythonError/Code/conversion`` with the offending type's name.
    init(_ object: PythonObject, _ gil: borrowing PythonGIL) throws
}

extension PythonError {
    static func conversion(_ object: PythonObject, to swiftType: String) -> PythonError {
        PythonError(
            code: .conversion,
            typeName: "TypeError",
            message: "cannot convert a Python \(String(cString: rlm_type_name(object.pointer))) to \(swiftType)"
        )
    }
}

func checked(_ pointer: UnsafeMutablePointer<PyObject>?, _ gil: borrowing PythonGIL) throws -> PythonObject {
    guard let pointer else { throw PythonError.fetch(gil, code: .conversion) }
    return PythonObject(owning: pointer)
}

extension PythonObject: PythonConvertible {
    public func makePythonObject(_ gil: borrowing PythonGIL) throws -> PythonObject { self }

    /// `None`.
    public static func none(_ gil: borrowing PythonGIL) -> PythonObject { PythonObject(borrowing: rlm_none()) }
}

// MARK: - Strings

extension String: PythonConvertible, ConvertibleFromPython {
    /// Creates a `str`. ASCII text (checked a word at a time) is copied once, straight into the
    /// new object's buffer; other text is decoded from UTF-8 by CPython.
    public func makePythonObject(_ gil: borrowing PythonGIL) throws -> PythonObject {
        var copy = self
        return try copy.withUTF8 { buffer in try makePythonString(utf8: UnsafeRawBufferPointer(buffer), gil) }
    }

    /// Reads a `str`. Lone surrogates, which UTF-8 cannot carry, become U+FFFD.
    public init(_ object: PythonObject, _ gil: borrowing PythonGIL) throws {
        guard rlm_is_unicode(object.pointer) != 0 else { throw PythonError.conversion(object, to: "String") }
        self = lossyString(object.pointer)
    }
}

/// Whether every byte is below 0x80, eight bytes at a time.
func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
    guard let base = bytes.baseAddress else { return true }
    let count = bytes.count
    var index = 0
    var accumulated: UInt64 = 0
    while index + 32 <= count {
        accumulated |= base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            | base.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self)
            | base.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self)
            | base.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self)
        index += 32
        if index & 0xFFFF == 0, accumulated & 0x8080_8080_8080_8080 != 0 { return false }
    }
    while index < count {
        accumulated |= UInt64(base.load(fromByteOffset: index, as: UInt8.self))
        index += 1
    }
    return accumulated & 0x8080_8080_8080_8080 == 0
}

/// Creates a `str` from UTF-8 bytes; invalid UTF-8 raises a conversion error naming the offset.
func makePythonString(utf8 buffer: UnsafeRawBufferPointer, _ gil: borrowing PythonGIL) throws -> PythonObject {
    let count = buffer.count
    if isASCII(buffer) {
        guard let object = PyUnicode_New(count, 127) else { throw PythonError.fetch(gil, code: .conversion) }
        if count > 0, let source = buffer.baseAddress {
            rlm_unicode_data(object).copyMemory(from: source, byteCount: count)
        }
        return PythonObject(owning: object)
    }
    let pointer = buffer.baseAddress?.assumingMemoryBound(to: CChar.self)
    return try checked(PyUnicode_DecodeUTF8(pointer, count, "strict"), gil)
}

extension PythonObject {
    /// Creates a `str` from a UTF-8 text file, reading it straight into the new object's buffer.
    ///
    /// The file is read (not mapped) into a compact ASCII `str` of its size with the GIL released;
    /// if it turns out not to be ASCII, it is decoded from that buffer instead. An ASCII file thus
    /// costs one copy and its own size in memory. Invalid UTF-8 throws
    /// ``PythonError/Code/conversion`` naming the byte offset; an unreadable file throws too.
    public static func string(contentsOfFile path: String, _ gil: borrowing PythonGIL) throws -> PythonObject {
        let descriptor = try PythonError.openForReading(path)
        defer { close(descriptor) }
        return try string(descriptor: descriptor, describedAs: path, gil)
    }

    /// A `str` from the whole content of an open file or memory file (read with `pread`, so its
    /// offset does not matter), with one copy into the new string.
    static func string(descriptor: Int32, describedAs path: String, _ gil: borrowing PythonGIL) throws -> PythonObject {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw PythonError(code: .conversion, typeName: "OSError", message: "cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        let size = Int(status.st_size)
        guard let object = PyUnicode_New(size, 127) else { throw PythonError.fetch(gil, code: .conversion) }
        let ascii = PythonObject(owning: object)
        let buffer = UnsafeMutableRawBufferPointer(start: rlm_unicode_data(object), count: size)
        let failure: Int32? = gil.allowThreads {
            var offset = 0
            while offset < size {
                let count = pread(descriptor, buffer.baseAddress! + offset, size - offset, off_t(offset))
                if count < 0 && errno == EINTR { continue }
                if count < 0 { return errno }
                if count == 0 { return EIO }
                offset += count
            }
            return nil
        }
        if let failure {
            throw PythonError(code: .conversion, typeName: "OSError", message: "cannot read \(path): \(String(cString: strerror(failure)))")
        }
        if isASCII(UnsafeRawBufferPointer(buffer)) { return ascii }
        return try makePythonString(utf8: UnsafeRawBufferPointer(buffer), gil)
    }

    /// Creates a `str` from UTF-8 bytes, for example a file's contents.
    ///
    /// Invalid UTF-8 throws ``PythonError/Code/conversion`` whose message names the byte offset.
    public static func string(utf8 data: Data, _ gil: borrowing PythonGIL) throws -> PythonObject {
        try data.withUnsafeBytes { try makePythonString(utf8: $0, gil) }
    }
}

// MARK: - Numbers and booleans

extension Int: PythonConvertible, ConvertibleFromPython {
    public func makePythonObject(_ gil: borrowing PythonGIL) throws -> PythonObject {
        try checked(PyLong_FromLongLong(Int64(self)), gil)
    }

    /// Reads an `int` (not a `bool`); one outside `Int`'s range throws.
    public init(_ object: PythonObject, _ gil: borrowing PythonGIL) throws {
        guard rlm_is_long(object.pointer) != 0, rlm_is_bool(object.pointer) == 0 else {
            throw PythonError.conversion(object, to: "Int")
        }
        var overflow: Int32 = 0
        let value = PyLong_AsLongLongAndOverflow(object.pointer, &overflow)
        guard overflow == 0 else {
            throw PythonError(code: .conversion, typeName: "OverflowError", message: "Python int does not fit in Int")
        }
        self = Int(value)
    }
}

extension Double: PythonConvertible, ConvertibleFromPython {
    public func makePythonObject(_ gil: borrowing PythonGIL) throws -> PythonObject {
        try checked(PyFloat_FromDouble(self), gil)
    }

    /// Reads a `float` or an `int` (as `float()` would).
    public init(_ object: PythonObject, _ gil: borrowing PythonGIL) throws {
        guard rlm_is_float(object.pointer) != 0 || rlm_is_long(object.pointer) != 0 else {
            throw PythonError.conversion(object, to: "Double")
        }
        let value = PyFloat_AsDouble(object.pointer)
        if value == -1, PyErr_Occurred() != nil { throw PythonError.fetch(gil, code: .conversion) }
        self = value
    }
}

extension Bool: PythonConvertible, ConvertibleFromPython {
    public func makePythonObject(_ gil: borrowing PythonGIL) throws -> PythonObject {
        PythonObject(borrowing: self ? rlm_true() : rlm_false())
    }

    /// Reads a `bool` (only `True` and `False`; use ``PythonValue/isTruthy`` for truthiness).
    public init(_ object: PythonObject, _ gil: borrowing PythonGIL) throws {
        guard rlm_is_bool(object.pointer) != 0 else { throw PythonError.conversion(object, to: "Bool") }
        self = object.pointer == rlm_true()
    }
}

// MARK: - Bytes

extension Data: PythonConvertible, ConvertibleFromPython {
    public func makePythonObject(_ gil: borrowing PythonGIL) throws -> PythonObject {
        try withUnsafeBytes { buffer in
            try checked(PyBytes_FromStringAndSize(buffer.baseAddress?.assumingMemoryBound(to: CChar.self), buffer.count), gil)
        }
    }

    /// Reads `bytes` or `bytearray`.
    public init(_ object: PythonObject, _ gil: borrowing PythonGIL) throws {
        if rlm_is_bytes(object.pointer) != 0 {
            let count = PyBytes_Size(object.pointer)
            guard let base = PyBytes_AsString(object.pointer) else { throw PythonError.fetch(gil, code: .conversion) }
            self = Data(bytes: base, count: count)
        } else if rlm_is_bytearray(object.pointer) != 0 {
            let count = PyByteArray_Size(object.pointer)
            guard let base = PyByteArray_AsString(object.pointer) else { throw PythonError.fetch(gil, code: .conversion) }
            self = Data(bytes: base, count: count)
        } else {
            throw PythonError.conversion(object, to: "Data")
        }
    }
}

// MARK: - Containers

extension Optional: PythonConvertible where Wrapped: PythonConvertible {
    public func makePythonObject(_ gil: borrowing PythonGIL) throws -> PythonObject {
        switch self {
        case .none: PythonObject.none(gil)
        case .some(let value): try value.makePythonObject(gil)
        }
    }
}

extension Optional: ConvertibleFromPython where Wrapped: ConvertibleFromPython {
    public init(_ object: PythonObject, _ gil: borrowing PythonGIL) throws {
        self = object.pointer == rlm_none() ? .none : .some(try Wrapped(object, gil))
    }
}

extension Array: PythonConvertible where Element: PythonConvertible {
    /// Creates a `list`.
    public func makePythonObject(_ gil: borrowing PythonGIL) throws -> PythonObject {
        let list = try checked(PyList_New(count), gil)
        for (index, element) in enumerated() {
            rlm_list_set(list.pointer, index, try element.makePythonObject(gil).passRetained())
        }
        return list
    }
}

extension Array: ConvertibleFromPython where Element: ConvertibleFromPython {
    /// Reads a `list` or `tuple`.
    public init(_ object: PythonObject, _ gil: borrowing PythonGIL) throws {
        guard rlm_is_list(object.pointer) != 0 || rlm_is_tuple(object.pointer) != 0 else {
            throw PythonError.conversion(object, to: "Array")
        }
        let count = PySequence_Size(object.pointer)
        var result: [Element] = []
        result.reserveCapacity(count)
        for index in 0..<count {
            guard let item = PySequence_GetItem(object.pointer, index) else { throw PythonError.fetch(gil, code: .conversion) }
            result.append(try Element(PythonObject(owning: item), gil))
        }
        self = result
    }
}

extension Dictionary: PythonConvertible where Key == String, Value: PythonConvertible {
    /// Creates a `dict`.
    public func makePythonObject(_ gil: borrowing PythonGIL) throws -> PythonObject {
        let dict = try checked(PyDict_New(), gil)
        for (key, value) in self {
            try dict.setItem(key, try value.makePythonObject(gil), gil)
        }
        return dict
    }
}

extension Dictionary: ConvertibleFromPython where Key == String, Value: ConvertibleFromPython {
    /// Reads a `dict` whose keys are all `str`.
    public init(_ object: PythonObject, _ gil: borrowing PythonGIL) throws {
        guard rlm_is_dict(object.pointer) != 0 else { throw PythonError.conversion(object, to: "Dictionary") }
        var result: [String: Value] = [:]
        var position = 0
        var key: UnsafeMutablePointer<PyObject>?
        var value: UnsafeMutablePointer<PyObject>?
        while PyDict_Next(object.pointer, &position, &key, &value) != 0 {
            guard let key, let value else { continue }
            let swiftKey = try String(PythonObject(borrowing: key), gil)
            result[swiftKey] = try Value(PythonObject(borrowing: value), gil)
        }
        self = result
    }
}
