import Synchronization
#if RLM_TSAN_LOCKS
import PythonRuntime  // its SanitizerMutex is this module's Mutex under ThreadSanitizer
#endif

/// A counting semaphore for async code: `acquire` suspends (never blocks a thread) and honours
/// cancellation; waiters are served first come, first served.
final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        var nextID: UInt64 = 0
        /// Waiters between taking an id and queueing, and those of them already cancelled.
        var arriving: Set<UInt64> = []
        var cancelledEarly: Set<UInt64> = []
    }

    private let state: Mutex<State>

    init(permits: Int) {
        state = Mutex(State(available: permits))
    }

    func acquire() async throws {
        try await acquire(checkingCancellationFirst: true)
    }

    /// `checkingCancellationFirst: false` lets a test enter with its task already cancelled, the
    /// window a cancellation can hit between the check and the queueing.
    func acquire(checkingCancellationFirst: Bool) async throws {
        if checkingCancellationFirst { try Task.checkCancellation() }
        let id = state.withLock { state -> UInt64? in
            if state.available > 0 {
                state.available -= 1
                return nil
            }
            state.nextID += 1
            state.arriving.insert(state.nextID)
            return state.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Bool, CancellationError> in
                    state.arriving.remove(id)
                    if state.cancelledEarly.remove(id) != nil { return .failure(CancellationError()) }
                    if state.available > 0 {
                        state.available -= 1
                        return .success(true)
                    }
                    state.waiters.append((id, continuation))
                    return .success(false)
                }
                switch outcome {
                case .success(true): continuation.resume()
                case .success(false): break
                case .failure(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else {
                    // Not queued yet: the queueing will see this. (Already granted: nothing to do.)
                    if state.arriving.contains(id) { state.cancelledEarly.insert(id) }
                    return nil
                }
                return state.waiters.remove(at: index).continuation
            }
            continuation?.resume(throwing: CancellationError())
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst().continuation
        }
        next?.resume()
    }

    /// Runs `body` holding one permit.
    func withPermit<T>(_ body: () async throws -> T) async throws -> T {
        try await acquire()
        defer { release() }
        return try await body()
    }
}
