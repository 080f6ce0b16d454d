import CPython
import Foundation

extension PythonValue: PythonConvertible, ConvertibleFromPython {
    /// How deep containers may nest before conversion gives up (this also stops cycles).
    public static let maximumNesting = 256

    public func makePythonObject(_ gil: borrowing PythonGIL) throws -> PythonObject {
        switch self {
        case .none: return PythonObject.none(gil)
        case .bool(let value): return try value.makePythonObject(gil)
        case .int(let value): return try value.makePythonObject(gil)
        case .bigInt(let digits):
            return try checked(PyLong_FromString(digits, nil, 10), gil)
        case .double(let value): return try value.makePythonObject(gil)
        case .string(let value): return try value.makePythonObject(gil)
        case .bytes(let value): return try value.makePythonObject(gil)
        case .list(let values): return try values.makePythonObject(gil)
        case .dictionary(let entries):
            let dict = try checked(PyDict_New(), gil)
            for entry in entries {
                try dict.setItem(entry.key, try entry.value.makePythonObject(gil), gil)
            }
            return dict
        }
    }

    /// Reads any JSON-like object: `None`, `bool`, `int`, `float`, `str`, `bytes`, `bytearray`,
    /// `list`, `tuple`, `set`, `frozenset` and `dict`. Other types throw
    /// ``PythonError/Code/conversion`` naming the type and where it was found.
    public init(_ object: PythonObject, _ gil: borrowing PythonGIL) throws {
        self = try Self.convert(object.pointer, depth: 0, path: "value")
    }

    private static func convert(_ pointer: UnsafeMutablePointer<PyObject>, depth: Int, path: String) throws -> PythonValue {
        guard depth < maximumNesting else {
            throw PythonError(code: .conversion, typeName: "ValueError",
                              message: "\(path) is nested more than \(maximumNesting) levels deep (or contains itself)")
        }
        if pointer == rlm_none() { return .none }
        if rlm_is_bool(pointer) != 0 { return .bool(pointer == rlm_true()) }
        if rlm_is_long(pointer) != 0 {
            var overflow: Int32 = 0
            let value = PyLong_AsLongLongAndOverflow(pointer, &overflow)
            if overflow == 0 {
                if value == -1, PyErr_Occurred() != nil { throw PythonError.fetchRaw(code: .conversion) }
                return .int(Int(value))
            }
            guard let text = PyObject_Str(pointer) else { throw PythonError.fetchRaw(code: .conversion) }
            defer { rlm_decref(text) }
            return .bigInt(lossyString(text))
        }
        if rlm_is_float(pointer) != 0 { return .double(PyFloat_AsDouble(pointer)) }
        if rlm_is_unicode(pointer) != 0 { return .string(lossyString(pointer)) }
        if rlm_is_bytes(pointer) != 0 || rlm_is_bytearray(pointer) != 0 {
            let isBytes = rlm_is_bytes(pointer) != 0
            let count = isBytes ? PyBytes_Size(pointer) : PyByteArray_Size(pointer)
            guard let base = isBytes ? PyBytes_AsString(pointer) : PyByteArray_AsString(pointer) else {
                throw PythonError.fetchRaw(code: .conversion)
            }
            return .bytes(Data(bytes: base, count: count))
        }
        if rlm_is_dict(pointer) != 0 {
            var entries: [Entry] = []
            entries.reserveCapacity(PyDict_Size(pointer))
            var position = 0
            var key: UnsafeMutablePointer<PyObject>?
            var value: UnsafeMutablePointer<PyObject>?
            while PyDict_Next(pointer, &position, &key, &value) != 0 {
                guard let key, let value else { continue }
                let keyText = try dictionaryKey(key, path: path)
                entries.append(Entry(keyText, try convert(value, depth: depth + 1, path: "\(path)[\(keyText.debugDescription)]")))
            }
            return .dictionary(entries)
        }
        if rlm_is_list(pointer) != 0 || rlm_is_tuple(pointer) != 0
            || rlm_is_anyset(pointer) != 0
        {
            guard let sequence = PySequence_Fast(pointer, "expected a sequence") else {
                throw PythonError.fetchRaw(code: .conversion)
            }
            defer { rlm_decref(sequence) }
            let count = PySequence_Size(sequence)
            var values: [PythonValue] = []
            values.reserveCapacity(count)
            for index in 0..<count {
                guard let item = PySequence_GetItem(sequence, index) else { throw PythonError.fetchRaw(code: .conversion) }
                defer { rlm_decref(item) }
                values.append(try convert(item, depth: depth + 1, path: "\(path)[\(index)]"))
            }
            return .list(values)
        }
        throw PythonError(code: .conversion, typeName: "TypeError",
                          message: "\(path) is a Python \(String(cString: rlm_type_name(pointer))), which has no JSON-like Swift value")
    }

    private static func dictionaryKey(_ key: UnsafeMutablePointer<PyObject>, path: String) throws -> String {
        if rlm_is_unicode(key) != 0 { return lossyString(key) }
        if key == rlm_none() { return "None" }
        if rlm_is_long(key) != 0 || rlm_is_float(key) != 0 {
            guard let text = PyObject_Str(key) else { throw PythonError.fetchRaw(code: .conversion) }
            defer { rlm_decref(text) }
            return lossyString(text)
        }
        throw PythonError(code: .conversion, typeName: "TypeError",
                          message: "\(path) has a key of type \(String(cString: rlm_type_name(key))); only str, int, float, bool and None keys convert")
    }
}
