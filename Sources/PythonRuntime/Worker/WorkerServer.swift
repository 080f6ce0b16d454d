import CRLMProcess
import Foundation
import Synchronization

/// The worker's side of the channel: runs in the `rlm-worker` executable, after it confined
/// itself, and serves one sandboxed ``PythonNamespace`` to the host until the channel closes.
package final class WorkerServer: Sendable {
    private let channel: WorkerChannel
    private let namespace: PythonNamespace
    private let nextCall = Atomic<Int>(0)
    private let pendingCalls = Mutex<[Int: CheckedContinuation<PythonValue, any Error>]>([:])
    private let executions = Mutex<[Int: Task<Void, Never>]>([:])

    private init(channel: WorkerChannel, namespace: PythonNamespace) {
        self.channel = channel
        self.namespace = namespace
    }

    /// Starts the namespace, says `ready` (with the confinement that was applied) and serves
    /// requests until the host closes the channel. Never returns.
    package static func run(channel: WorkerChannel, configuration: PythonNamespace.Configuration, layers: UInt32, landlockABI: Int) async -> Never {
        let namespace: PythonNamespace
        do {
            namespace = try await PythonNamespace(configuration: configuration)
        } catch {
            try? channel.send(.ready(layers: layers, landlockABI: landlockABI, error: "\(error)"))
            exit(71)
        }
        try? channel.send(.ready(layers: layers, landlockABI: landlockABI, error: nil))
        let server = WorkerServer(channel: channel, namespace: namespace)
        // Receiving blocks: it gets a thread of its own, never a cooperative one.
        let done = DispatchSemaphore(value: 0)
        let reader = Thread { server.receiveLoop(); done.signal() }
        reader.name = "rlm.worker.channel"
        reader.start()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                done.wait()
                continuation.resume()
            }
        }
        exit(0)
    }

    private func receiveLoop() {
        channel.receiveAll { message, fd in handle(message, fd: fd) }
    }

    private func reply(_ id: Int, _ work: @escaping @Sendable () async throws -> WorkerMessage.Reply) {
        Task {
            let reply: WorkerMessage.Reply
            do {
                reply = try await work()
            } catch {
                reply = .failure(PythonError(bridging: error))
            }
            try? self.channel.send(.reply(id, reply))
        }
    }

    private func handle(_ message: WorkerMessage, fd: Int32?) {
        let namespace = self.namespace
        switch message {
        case .install(let id, let name, let documentation):
            let function = NativeFunction(name: name, documentation: documentation, async: { [self] arguments in
                try await self.forward(name, arguments)
            })
            reply(id) { try await namespace.install(function); return .ok }
        case .set(let id, let name, let value):
            reply(id) { try await namespace.set(name, to: value); return .ok }
        case .setString(let id, let name, let length):
            reply(id) {
                guard let fd else { throw PythonError(code: .conversion, message: "no descriptor came with the text") }
                defer { close(fd) }
                try await namespace.setString(name, fromDescriptor: fd, length: length)
                return .ok
            }
        case .setMapping(let id, let name):
            reply(id) {
                guard let fd else { throw PythonError(code: .conversion, message: "no descriptor came with the mapping") }
                defer { close(fd) }
                try await namespace.setMapping(name, fromDescriptor: fd)
                return .ok
            }
        case .evaluate(let id, let expression, let isPrivate):
            reply(id) { .value(isPrivate ? try await namespace.evaluatePrivately(expression) : try await namespace.evaluate(expression)) }
        case .executePrivately(let id, let code):
            reply(id) { try await namespace.executePrivately(code); return .ok }
        case .execute(let id, let code, let timeout):
            // Recorded under the lock the task takes to remove itself, so it is never left behind.
            executions.withLock { executions in executions[id] = Task {
                let reply: WorkerMessage.Reply
                do {
                    reply = .result(try await namespace.execute(code, timeout: timeout > 0 ? .nanoseconds(timeout) : nil))
                } catch let error as PythonError {
                    reply = .failure(error)
                } catch {
                    reply = .failure(PythonError(code: .interrupted, typeName: "ExecutionInterrupted", message: "the cell was stopped"))
                }
                _ = self.executions.withLock { $0.removeValue(forKey: id) }
                try? self.channel.send(.reply(id, reply))
            } }
        case .stop(let id):
            executions.withLock { $0[id] }?.cancel()
        case .callResult(let callID, let value, let error):
            let continuation = pendingCalls.withLock { $0.removeValue(forKey: callID) }
            if let error { continuation?.resume(throwing: error) } else { continuation?.resume(returning: value ?? .none) }
        case .ready, .reply, .call:
            break
        }
    }

    /// A native function's body in the worker: asks the host to run the real one.
    private func forward(_ name: String, _ arguments: PythonArguments) async throws -> PythonValue {
        let callID = nextCall.add(1, ordering: .relaxed).newValue
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                pendingCalls.withLock { $0[callID] = continuation }
                do {
                    try channel.send(.call(callID: callID, name: name, arguments: arguments))
                } catch {
                    pendingCalls.withLock { $0.removeValue(forKey: callID) }?.resume(throwing: error)
                }
            }
        } onCancel: {
            pendingCalls.withLock { $0.removeValue(forKey: callID) }?.resume(throwing: CancellationError())
        }
    }
}
