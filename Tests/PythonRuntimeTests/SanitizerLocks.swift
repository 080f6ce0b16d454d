#if RLM_TSAN_LOCKS
import PythonRuntime

/// Under ThreadSanitizer, `Mutex` is a lock it can see (see `SanitizerMutex`).
typealias Mutex<Value> = SanitizerMutex<Value>
#endif
