#if RLM_TSAN_LOCKS
import Glibc

/// A stand-in for `Synchronization.Mutex` built on `pthread_mutex_t`, for ThreadSanitizer runs
/// only (scripts/sanitize.sh compiles with `-D RLM_TSAN_LOCKS`).
///
/// On Linux, `Synchronization.Mutex` locks with raw futex system calls from the standard library,
/// which is not instrumented, so ThreadSanitizer never sees its acquire and release and reports
/// every access it guards that two threads make as a race (a two-thread counter under `Mutex`
/// shows the reports). ThreadSanitizer intercepts `pthread_mutex_*`. Each module of ours declares
/// `Mutex` as an alias of this type under the same flag, which shadows the imported one.
public struct SanitizerMutex<Value>: ~Copyable, @unchecked Sendable {
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    public init(_ initialValue: consuming sending Value) {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
        value = .allocate(capacity: 1)
        value.initialize(to: initialValue)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
        value.deinitialize(count: 1)
        value.deallocate()
    }

    public borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value.pointee)
    }
}

typealias Mutex<Value> = SanitizerMutex<Value>
#endif
