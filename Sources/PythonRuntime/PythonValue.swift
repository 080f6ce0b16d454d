import Foundation

/// A JSON-like Python value held in Swift: `Sendable`, and free of Python references.
///
/// It is what crosses between threads and between Swift and Python in native functions. Literals
/// build one directly:
///
/// ```swift
/// let value: PythonValue = ["name": "needle", "hits": [1, 2, 3], "score": 0.5, "seen": nil]
/// ```
///
/// Dictionaries keep their insertion order, as Python's do.
public enum PythonValue: Sendable, Hashable {
    /// `None`.
    case none
    /// `bool`.
    case bool(Bool)
    /// An `int` that fits in `Int`.
    case int(Int)
    /// An `int` too large for `Int`, as its decimal digits (with a leading `-` when negative).
    case bigInt(String)
    /// `float`.
    case double(Double)
    /// `str`.
    case string(String)
    /// `bytes` (and `bytearray` when converted from Python).
    case bytes(Data)
    /// `list` (and `tuple`, `set`, `frozenset` when converted from Python).
    case list([PythonValue])
    /// `dict` with string keys, in insertion order. Python keys that are `int`, `float`, `bool`
    /// or `None` are converted with `str()`.
    case dictionary([Entry])

    /// One key and value of a ``PythonValue/dictionary(_:)``.
    public struct Entry: Sendable, Hashable {
        /// The key.
        public var key: String
        /// The value.
        public var value: PythonValue
        /// Creates an entry.
        public init(_ key: String, _ value: PythonValue) {
            self.key = key
            self.value = value
        }
    }

    /// The string, if this is a ``string(_:)``.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The integer, if this is an ``int(_:)``.
    public var intValue: Int? {
        if case .int(let value) = self { return value }
        return nil
    }

    /// The elements, if this is a ``list(_:)``.
    public var listValue: [PythonValue]? {
        if case .list(let value) = self { return value }
        return nil
    }

    /// The value stored under `key`, if this is a ``dictionary(_:)`` that has it.
    public subscript(key: String) -> PythonValue? {
        guard case .dictionary(let entries) = self else { return nil }
        return entries.last(where: { $0.key == key })?.value
    }

    /// Whether Python would consider the value true.
    public var isTruthy: Bool {
        switch self {
        case .none: false
        case .bool(let value): value
        case .int(let value): value != 0
        case .bigInt: true
        case .double(let value): value != 0
        case .string(let value): !value.isEmpty
        case .bytes(let value): !value.isEmpty
        case .list(let value): !value.isEmpty
        case .dictionary(let value): !value.isEmpty
        }
    }

    /// The name of the Python type this value converts to.
    public var pythonTypeName: String {
        switch self {
        case .none: "NoneType"
        case .bool: "bool"
        case .int, .bigInt: "int"
        case .double: "float"
        case .string: "str"
        case .bytes: "bytes"
        case .list: "list"
        case .dictionary: "dict"
        }
    }
}

extension PythonValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .none }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: PythonValue...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, PythonValue)...) {
        self = .dictionary(elements.map { Entry($0.0, $0.1) })
    }
}

extension PythonValue: CustomStringConvertible {
    /// A Python-like rendering, for messages and logs.
    public var description: String {
        switch self {
        case .none: "None"
        case .bool(let value): value ? "True" : "False"
        case .int(let value): String(value)
        case .bigInt(let digits): digits
        case .double(let value): String(value)
        case .string(let value): value.debugDescription
        case .bytes(let value): "b<\(value.count) bytes>"
        case .list(let values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .dictionary(let entries):
            "{" + entries.map { "\($0.key.debugDescription): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }
}
