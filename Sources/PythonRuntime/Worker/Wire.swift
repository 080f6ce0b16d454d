import Foundation

/// The worker channel's encoding: little-endian integers, length-prefixed UTF-8 and bytes, and a
/// tag byte per ``PythonValue`` case. Both ends are this package, so no versioning is needed.
package struct WireWriter {
    package private(set) var bytes: [UInt8] = []

    package init() {}

    package mutating func u8(_ value: UInt8) { bytes.append(value) }

    package mutating func int(_ value: Int) {
        withUnsafeBytes(of: Int64(value).littleEndian) { bytes.append(contentsOf: $0) }
    }

    package mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            int(utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    package mutating func data(_ value: Data) {
        int(value.count)
        bytes.append(contentsOf: value)
    }

    package mutating func optionalString(_ value: String?) {
        if let value {
            u8(1)
            string(value)
        } else {
            u8(0)
        }
    }

    package mutating func value(_ value: PythonValue) {
        switch value {
        case .none: u8(0)
        case .bool(let flag): u8(flag ? 2 : 1)
        case .int(let number):
            u8(3)
            int(number)
        case .bigInt(let digits):
            u8(4)
            string(digits)
        case .double(let number):
            u8(5)
            withUnsafeBytes(of: number.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        case .string(let text):
            u8(6)
            string(text)
        case .bytes(let data):
            u8(7)
            self.data(data)
        case .list(let items):
            u8(8)
            int(items.count)
            for item in items { self.value(item) }
        case .dictionary(let entries):
            u8(9)
            int(entries.count)
            for entry in entries {
                string(entry.key)
                self.value(entry.value)
            }
        }
    }

    package mutating func error(_ error: PythonError) {
        string(error.code.description)
        string(error.typeName)
        string(error.message)
        string(error.traceback)
    }

    package mutating func result(_ result: ExecutionResult) {
        switch result.status {
        case .completed: u8(0)
        case .failed: u8(1)
        case .timedOut: u8(2)
        case .abandoned: u8(3)
        }
        string(result.stdout)
        string(result.stderr)
        int(result.stdoutOmittedCharacters)
        int(result.stderrOmittedCharacters)
        if let error = result.error {
            u8(1)
            self.error(error)
        } else {
            u8(0)
        }
        let (seconds, attoseconds) = result.duration.components
        int(Int(seconds))
        int(Int(attoseconds / 1_000_000_000))
    }
}

/// Reads what ``WireWriter`` wrote; throws on truncated or malformed input.
package struct WireReader {
    private let bytes: [UInt8]
    private var offset = 0

    package init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    package struct Malformed: Error, CustomStringConvertible {
        package var description: String { "a malformed message on the worker channel" }
    }

    package mutating func u8() throws -> UInt8 {
        guard offset < bytes.count else { throw Malformed() }
        defer { offset += 1 }
        return bytes[offset]
    }

    package mutating func int() throws -> Int {
        guard offset + 8 <= bytes.count else { throw Malformed() }
        var value: Int64 = 0
        for index in 0..<8 { value |= Int64(bytes[offset + index]) << (8 * index) }
        offset += 8
        return Int(value)
    }

    private mutating func raw(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, offset + count <= bytes.count else { throw Malformed() }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    package mutating func string() throws -> String {
        String(decoding: try raw(try int()), as: UTF8.self)
    }

    package mutating func data() throws -> Data {
        Data(try raw(try int()))
    }

    package mutating func optionalString() throws -> String? {
        try u8() == 1 ? try string() : nil
    }

    package mutating func value() throws -> PythonValue {
        switch try u8() {
        case 0: return .none
        case 1: return .bool(false)
        case 2: return .bool(true)
        case 3: return .int(try int())
        case 4: return .bigInt(try string())
        case 5: return .double(Double(bitPattern: UInt64(bitPattern: Int64(try int()))))
        case 6: return .string(try string())
        case 7: return .bytes(try data())
        case 8:
            let count = try int()
            guard count >= 0 else { throw Malformed() }
            var items: [PythonValue] = []
            items.reserveCapacity(min(count, 1 << 16))
            for _ in 0..<count { items.append(try value()) }
            return .list(items)
        case 9:
            let count = try int()
            guard count >= 0 else { throw Malformed() }
            var entries: [PythonValue.Entry] = []
            for _ in 0..<count { entries.append(.init(try string(), try value())) }
            return .dictionary(entries)
        default:
            throw Malformed()
        }
    }

    package mutating func error() throws -> PythonError {
        let code = try string()
        return PythonError(
            code: PythonError.Code.all.first { $0.description == code } ?? .exception,
            typeName: try string(), message: try string(), traceback: try string())
    }

    package mutating func result() throws -> ExecutionResult {
        let status: ExecutionResult.Status
        switch try u8() {
        case 0: status = .completed
        case 1: status = .failed
        case 2: status = .timedOut
        case 3: status = .abandoned
        default: throw Malformed()
        }
        let stdout = try string()
        let stderr = try string()
        let stdoutOmitted = try int()
        let stderrOmitted = try int()
        let error = try u8() == 1 ? try self.error() : nil
        let seconds = try int()
        let nanoseconds = try int()
        return ExecutionResult(
            status: status, stdout: stdout, stderr: stderr, stdoutOmittedCharacters: stdoutOmitted,
            stderrOmittedCharacters: stderrOmitted, error: error,
            duration: .seconds(seconds) + .nanoseconds(nanoseconds))
    }
}

extension PythonError.Code {
    /// Every code, for decoding by name.
    static let all: [PythonError.Code] = [.initialization, .exception, .conversion, .interrupted, .timedOut, .abandoned, .closed]
}
