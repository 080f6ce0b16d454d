import CRLMProcess
import Foundation

/// One message on the worker channel. Requests carry an id that their ``reply(_:_:)`` repeats.
package enum WorkerMessage: Sendable {
    // Host to worker.
    case install(id: Int, name: String, documentation: String)
    case set(id: Int, name: String, value: PythonValue)
    /// Binds a `str` read from the descriptor sent with the message: a sealed memory file of
    /// `length` bytes, or a file read to its end when `length` is -1.
    case setString(id: Int, name: String, length: Int)
    /// Binds a read-only mapping of the file whose descriptor is sent with the message.
    case setMapping(id: Int, name: String)
    case evaluate(id: Int, expression: String, private: Bool)
    case executePrivately(id: Int, code: String)
    case execute(id: Int, code: String, timeoutNanoseconds: Int)
    case stop(id: Int)
    case callResult(callID: Int, value: PythonValue?, error: PythonError?)
    // Worker to host.
    case ready(layers: UInt32, landlockABI: Int, error: String?)
    case reply(Int, Reply)
    case call(callID: Int, name: String, arguments: PythonArguments)

    package enum Reply: Sendable {
        case ok
        case value(PythonValue)
        case result(ExecutionResult)
        case failure(PythonError)
    }

    func encode() -> [UInt8] {
        var writer = WireWriter()
        switch self {
        case .install(let id, let name, let documentation):
            writer.u8(1); writer.int(id); writer.string(name); writer.string(documentation)
        case .set(let id, let name, let value):
            writer.u8(2); writer.int(id); writer.string(name); writer.value(value)
        case .setString(let id, let name, let length):
            writer.u8(3); writer.int(id); writer.string(name); writer.int(length)
        case .evaluate(let id, let expression, let isPrivate):
            writer.u8(4); writer.int(id); writer.string(expression); writer.u8(isPrivate ? 1 : 0)
        case .executePrivately(let id, let code):
            writer.u8(5); writer.int(id); writer.string(code)
        case .execute(let id, let code, let timeout):
            writer.u8(6); writer.int(id); writer.string(code); writer.int(timeout)
        case .stop(let id):
            writer.u8(7); writer.int(id)
        case .callResult(let callID, let value, let error):
            writer.u8(8); writer.int(callID)
            if let error {
                writer.u8(1); writer.error(error)
            } else {
                writer.u8(0); writer.value(value ?? .none)
            }
        case .ready(let layers, let abi, let error):
            writer.u8(9); writer.int(Int(layers)); writer.int(abi); writer.optionalString(error)
        case .reply(let id, let reply):
            writer.u8(10); writer.int(id)
            switch reply {
            case .ok: writer.u8(0)
            case .value(let value): writer.u8(1); writer.value(value)
            case .result(let result): writer.u8(2); writer.result(result)
            case .failure(let error): writer.u8(3); writer.error(error)
            }
        case .setMapping(let id, let name):
            writer.u8(12); writer.int(id); writer.string(name)
        case .call(let callID, let name, let arguments):
            writer.u8(11); writer.int(callID); writer.string(name)
            writer.value(.list(arguments.positional)); writer.value(.dictionary(arguments.keywords))
        }
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> WorkerMessage {
        var reader = WireReader(bytes)
        switch try reader.u8() {
        case 1: return .install(id: try reader.int(), name: try reader.string(), documentation: try reader.string())
        case 2: return .set(id: try reader.int(), name: try reader.string(), value: try reader.value())
        case 3: return .setString(id: try reader.int(), name: try reader.string(), length: try reader.int())
        case 4: return .evaluate(id: try reader.int(), expression: try reader.string(), private: try reader.u8() == 1)
        case 5: return .executePrivately(id: try reader.int(), code: try reader.string())
        case 6: return .execute(id: try reader.int(), code: try reader.string(), timeoutNanoseconds: try reader.int())
        case 7: return .stop(id: try reader.int())
        case 8:
            let callID = try reader.int()
            if try reader.u8() == 1 { return .callResult(callID: callID, value: nil, error: try reader.error()) }
            return .callResult(callID: callID, value: try reader.value(), error: nil)
        case 9: return .ready(layers: UInt32(truncatingIfNeeded: try reader.int()), landlockABI: try reader.int(), error: try reader.optionalString())
        case 10:
            let id = try reader.int()
            switch try reader.u8() {
            case 0: return .reply(id, .ok)
            case 1: return .reply(id, .value(try reader.value()))
            case 2: return .reply(id, .result(try reader.result()))
            case 3: return .reply(id, .failure(try reader.error()))
            default: throw WireReader.Malformed()
            }
        case 11:
            let callID = try reader.int()
            let name = try reader.string()
            let positional = try reader.value().listValue ?? []
            guard case .dictionary(let keywords) = try reader.value() else { throw WireReader.Malformed() }
            return .call(callID: callID, name: name, arguments: PythonArguments(positional: positional, keywords: keywords))
        case 12: return .setMapping(id: try reader.int(), name: try reader.string())
        default:
            throw WireReader.Malformed()
        }
    }
}

/// Framed messages over a connected stream socket: a 4-byte little-endian length, then the
/// message; a descriptor travels with a frame's first byte. Sends are serialised by a lock;
/// one thread receives.
package final class WorkerChannel: @unchecked Sendable {
    package let descriptor: Int32
    private let sendLock = NSLock()
    /// Frames above this size are refused (contexts travel as memory files, not frames).
    static let maxFrame = 1 << 30

    /// Takes ownership of `descriptor`: it is closed when the channel is released, that is when
    /// every thread reading or writing it is done (so its number cannot be reused under them).
    package init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    package struct Failure: Error, CustomStringConvertible {
        package var description: String
    }

    package func send(_ message: WorkerMessage, passing fd: Int32 = -1) throws {
        let body = message.encode()
        guard body.count < Self.maxFrame else { throw Failure(description: "a message of \(body.count) bytes is too large for the worker channel") }
        var frame = [UInt8]()
        frame.reserveCapacity(body.count + 4)
        withUnsafeBytes(of: UInt32(body.count).littleEndian) { frame.append(contentsOf: $0) }
        frame.append(contentsOf: body)
        let error = sendLock.withLock {
            frame.withUnsafeBytes { buffer in buffer.baseAddress.map { rlm_send(descriptor, $0, buffer.count, fd) } ?? EINVAL }
        }
        if error != 0 { throw Failure(description: "the worker channel is closed (\(String(cString: strerror(error))))") }
    }

    /// Receives messages and hands each to `handle` until the stream ends or breaks. Blocks: call
    /// it on a thread of its own.
    package func receiveAll(_ handle: (WorkerMessage, Int32?) -> Void) {
        while let (message, fd) = (try? receive()) ?? nil {
            handle(message, fd)
        }
    }

    /// The next message and the descriptor that came with it; `nil` at the end of the stream.
    package func receive() throws -> (WorkerMessage, Int32?)? {
        var header = [UInt8](repeating: 0, count: 4)
        var fd: Int32 = -1
        let status = header.withUnsafeMutableBytes { buffer in buffer.baseAddress.map { rlm_receive(descriptor, $0, 4, &fd) } ?? EINVAL }
        if status == -1 { return nil }
        if status != 0 { throw Failure(description: "reading the worker channel failed (\(String(cString: strerror(status))))") }
        let length = Int(UInt32(header[0]) | UInt32(header[1]) << 8 | UInt32(header[2]) << 16 | UInt32(header[3]) << 24)
        guard length > 0, length < Self.maxFrame else { throw WireReader.Malformed() }
        var body = [UInt8](repeating: 0, count: length)
        var bodyFD: Int32 = -1
        let bodyStatus = body.withUnsafeMutableBytes { buffer in
            buffer.baseAddress.map { rlm_receive(descriptor, $0, length, &bodyFD) } ?? EINVAL
        }
        if bodyStatus != 0 { throw Failure(description: "the worker channel closed in the middle of a message") }
        let passed = fd >= 0 ? fd : (bodyFD >= 0 ? bodyFD : nil)
        return (try WorkerMessage.decode(body), passed)
    }
}
