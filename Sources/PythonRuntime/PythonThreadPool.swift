import CPython
import Foundation

/// The OS threads that run Python for every namespace in the process, and their limits.
///
/// A namespace's jobs run one at a time, in order, on whichever pool thread is free; an idle
/// namespace holds no thread. A job that waits (a native call whose Swift work is in flight, such
/// as a model call) keeps its thread, so the number of threads is the number of jobs running or
/// waiting at once, up to a limit per *level* (``PythonNamespace/Configuration/level``).
///
/// Only a few jobs run Python at once (``activeLimit``): there is one GIL, and every thread past
/// it only adds hand-offs of the GIL. A job waiting in a native call does not count, so a new job
/// starts (on a new thread if none is free) whenever one begins to wait. A job that holds its
/// thread for longer than a moment without such a wait (long Python, a lock, a file) counts as
/// stuck after 2 ms, and another job may start beside it.
///
/// Levels keep a limit from deadlocking: code may wait on namespaces of deeper levels (a parent
/// RLM's cell on its children's cells), and each level has threads of its own, so a parent's
/// waiting cells never take the threads its children need. Past the limit, a namespace's job
/// waits for one of its level's jobs to end; jobs of deeper levels are served first.
public enum PythonThreads {
    /// The most jobs of one level that run (or wait) at once, each on a thread of its own; at
    /// least 1. Defaults to ``defaultLimitPerLevel``. With code at depths 0 and 1, the pool has
    /// at most twice this many threads, plus threads stuck in code that could not be stopped.
    public static var limitPerLevel: Int {
        get { PythonThreadPool.shared.limitPerLevel }
        set { PythonThreadPool.shared.limitPerLevel = newValue }
    }

    /// The limit per level a process starts with: 128. It bounds the threads of jobs that wait
    /// (only ``activeLimit`` run Python at once). On 2 cores, 1,000 runs at once were no faster
    /// at 512, and 200 runs took 0.44 s at 128 and 0.51 s at 64 (fewer leave sub-calls waiting
    /// for a thread).
    public static let defaultLimitPerLevel = 128

    /// The most jobs that run Python (rather than wait in a native call) at once: the number of
    /// cores, at least 2. Jobs stuck for longer than a moment do not count against it.
    public static var activeLimit: Int { PythonThreadPool.activeLimit }

    /// The pool threads started so far (they never end).
    public static var count: Int { PythonThreadPool.shared.threadCount }
}

/// The pool behind ``PythonThreads``. Its threads never end, so a thread identifier, which keys
/// output capture and stops, always names the same thread.
final class PythonThreadPool: @unchecked Sendable {
    static let shared = PythonThreadPool()

    /// The stack of each thread: deep recursion in model code needs more than the default.
    static let stackSize = 16 << 20

    /// Levels past the last share its limit.
    static let levels = 16

    /// Jobs that may run Python at once (``PythonThreads/activeLimit``). On 2 cores, 1,000
    /// concurrent runs had 124 threads contending for the GIL before this cap, with 260 context
    /// switches per run.
    static let activeLimit = max(2, ProcessInfo.processInfo.activeProcessorCount)

    /// How long a job may hold its thread, neither finishing nor waiting in a native call, before
    /// it stops counting against ``activeLimit`` (while other lanes wait for a thread).
    static let stuckAfterNanoseconds = 2_000_000

    private struct Queue {
        var lanes: [PythonLane] = []
        var head = 0
        var pending: Int { lanes.count - head }

        mutating func push(_ lane: PythonLane) { lanes.append(lane) }

        mutating func pop() -> PythonLane {
            let lane = lanes[head]
            head += 1
            if head > 64 && head * 2 > lanes.count {
                lanes.removeFirst(head)
                head = 0
            }
            return lane
        }
    }

    /// One pool thread's state, guarded by the pool's lock.
    private final class Worker: @unchecked Sendable {
        /// When its current job started (uptime nanoseconds).
        var jobStart: UInt64 = 0
        /// The lane whose job runs on it, `nil` between jobs.
        var lane: PythonLane?
        /// Whether the job waits in a native call.
        var waiting = false
        /// Whether the last check counted the job as stuck.
        var stuck = false
    }

    private let condition = NSCondition()
    private var ready = [Queue](repeating: Queue(), count: PythonThreadPool.levels)
    /// Jobs of each level that hold a thread.
    private var busy = [Int](repeating: 0, count: PythonThreadPool.levels)
    /// Pool threads whose job waits in a native call.
    private var waiting = 0
    /// Jobs found stuck by the last check: each lets one more job run.
    private var stuck = 0
    private var checkScheduled = false
    private var workers: [Worker] = []
    private var idle = 0
    private var started = 0
    /// Each level's limit.
    private var limits = [Int](repeating: PythonThreads.defaultLimitPerLevel, count: PythonThreadPool.levels)

    /// The current thread's worker, on pool threads.
    private static let workerKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    var threadCount: Int { condition.withLock { started } }

    var limitPerLevel: Int {
        get { condition.withLock { limits[0] } }
        set {
            condition.withLock {
                limits = [Int](repeating: max(1, newValue), count: Self.levels)
                wake()
            }
        }
    }

    /// Sets one level's limit (tests use levels nothing else does).
    func setLimit(_ limit: Int, level: Int) {
        condition.withLock {
            limits[Self.level(level)] = max(1, limit)
            wake()
        }
    }

    static func level(_ level: Int) -> Int { min(max(0, level), levels - 1) }

    /// The jobs of `level` that hold a thread now.
    func heldThreads(level: Int) -> Int {
        condition.withLock { busy[Self.level(level)] }
    }

    /// Lock held. How many more jobs may run Python now.
    private var capacity: Int { max(0, Self.activeLimit + stuck - max(0, busy.reduce(0, +) - waiting)) }

    /// Lock held. The lanes that are ready and under their level's limit.
    private var startable: Int {
        var count = 0
        for level in 0..<Self.levels where ready[level].pending > 0 {
            count += min(ready[level].pending, max(0, limits[level] - busy[level]))
        }
        return count
    }

    /// Queues `lane`, which has a job to run.
    func schedule(_ lane: PythonLane) {
        condition.withLock {
            ready[lane.level].push(lane)
            wake()
        }
    }

    /// Runs `body`, a wait of the calling thread that needs no GIL (a native call's), letting
    /// another job run meanwhile when the caller is a pool thread.
    func whileWaiting<T>(_ body: () throws -> T) rethrows -> T {
        guard let pointer = pthread_getspecific(Self.workerKey) else { return try body() }
        let worker = Unmanaged<Worker>.fromOpaque(pointer).takeUnretainedValue()
        let outermost = condition.withLock { () -> Bool in
            guard !worker.waiting else { return false }
            worker.waiting = true
            waiting += 1
            wake()
            return true
        }
        guard outermost else { return try body() }
        defer {
            condition.withLock {
                worker.waiting = false
                waiting -= 1
            }
        }
        return try body()
    }

    /// Lock held. Wakes idle threads for the lanes that may start, and starts threads for the
    /// rest; checks for stuck jobs when lanes wait for a thread.
    private func wake() {
        let startable = self.startable
        let needed = min(startable, capacity)
        if needed > 0 {
            for _ in 0..<min(needed, idle) { condition.signal() }
            if needed > idle {
                for _ in 0..<(needed - idle) { startThread() }
            }
        }
        if startable > needed && !checkScheduled {
            checkScheduled = true
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Self.stuckAfterNanoseconds)) { [self] in checkStuck() }
        }
    }

    /// Counts the jobs that have held their thread for ``stuckAfterNanoseconds`` without waiting in a native
    /// call, and lets as many more run.
    private func checkStuck() {
        condition.withLock {
            checkScheduled = false
            let now = DispatchTime.now().uptimeNanoseconds
            stuck = 0
            for worker in workers {
                // An abandoned job (its lane no longer holds the thread) already counts for nothing.
                worker.stuck = worker.lane?.holdsThread == true && !worker.waiting
                    && now - worker.jobStart >= UInt64(Self.stuckAfterNanoseconds)
                if worker.stuck { stuck += 1 }
            }
            wake()
        }
    }

    /// Lock held. The new thread counts as idle from now on, so that a lane scheduled before it
    /// runs does not start yet another.
    private func startThread() {
        started += 1
        idle += 1
        let worker = Worker()
        workers.append(worker)
        let thread = Thread { [self] in main(worker) }
        thread.name = "rlm.python"
        thread.stackSize = Self.stackSize
        thread.start()
    }

    /// Lock held. The next lane that may start, deepest level first (its jobs are what shallower
    /// jobs wait for), marked as holding a thread.
    private func take() -> PythonLane? {
        guard capacity > 0 else { return nil }
        for level in stride(from: Self.levels - 1, through: 0, by: -1)
        where ready[level].pending > 0 && busy[level] < limits[level] {
            busy[level] += 1
            let lane = ready[level].pop()
            lane.holdsThread = true
            return lane
        }
        return nil
    }

    /// Lock held. Waits for a lane that may start, counting the thread as idle meanwhile.
    private func waitForLane() -> PythonLane {
        while true {
            if let lane = take() { return lane }
            idle += 1
            condition.wait()
            idle -= 1
        }
    }

    /// Lock held. Gives back the thread `lane`'s job held, unless ``abandon(_:)`` already did.
    private func release(_ lane: PythonLane) {
        if lane.holdsThread {
            lane.holdsThread = false
            busy[lane.level] -= 1
        }
    }

    /// Stops counting the thread that `lane`'s running job holds against its level's limit: the
    /// job is stuck in code that could not be stopped, and may never end.
    func abandon(_ lane: PythonLane) {
        condition.withLock {
            release(lane)
            wake()
        }
    }

    private func main(_ worker: Worker) {
        pthread_setspecific(Self.workerKey, Unmanaged.passUnretained(worker).toOpaque())
        // One Python thread state for the thread's whole life; the GIL is released between jobs.
        _ = PyGILState_Ensure()
        var saved = PyEval_SaveThread()
        condition.lock()
        idle -= 1
        var lane = waitForLane()
        while true {
            worker.jobStart = DispatchTime.now().uptimeNanoseconds
            worker.lane = lane
            condition.unlock()
            lane.runNext(&saved)
            condition.lock()
            if worker.stuck {
                worker.stuck = false
                stuck -= 1
            }
            worker.lane = nil
            release(lane)
            if lane.jobEnded() { ready[lane.level].push(lane) }
            lane = waitForLane()
            wake()
        }
    }
}
