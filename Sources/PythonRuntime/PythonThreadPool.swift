import CPython
import Foundation

/// The OS threads that run Python for every namespace in the process, and their limits.
///
/// A namespace's jobs run one at a time, in order, on whichever pool thread is free; an idle
/// namespace holds no thread. A job that waits (a native call whose Swift work is in flight, such
/// as a model call) keeps its thread, so the number of threads is the number of jobs running or
/// waiting at once, up to a limit per *level* (``PythonNamespace/Configuration/level``).
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

    /// The limit per level a process starts with: 128. On 2 cores, 1,000 runs at once finished
    /// in 2.2 s at 128 and 3.7 s at 256 (more threads only fight over the GIL), and 200 runs in
    /// 0.44 s at 128 and 0.51 s at 64 (fewer leave sub-calls waiting for a thread).
    public static let defaultLimitPerLevel = 128

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

    /// Threads started as soon as a lane finds none idle. Past these, a new thread starts only
    /// for a lane that has waited ``growthDelay`` for one: a thread that has just finished a job
    /// (and resumed the caller, who submits the next) is about to look for work again.
    static let eagerThreads = 2 * ProcessInfo.processInfo.activeProcessorCount

    /// How long a ready lane waits for a busy thread to come back before the pool grows for it.
    static let growthDelay: DispatchTimeInterval = .milliseconds(1)

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

    private let condition = NSCondition()
    private var ready = [Queue](repeating: Queue(), count: PythonThreadPool.levels)
    /// Jobs of each level that hold a thread.
    private var busy = [Int](repeating: 0, count: PythonThreadPool.levels)
    private var idle = 0
    private var started = 0
    /// Each level's limit.
    private var limits = [Int](repeating: PythonThreads.defaultLimitPerLevel, count: PythonThreadPool.levels)

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

    /// Lock held. The lanes that could start now: ready, and under their level's limit.
    private var runnable: Int {
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

    /// Lock held. Wakes idle threads for the runnable lanes, and starts threads for the rest:
    /// at once while the pool is small, after ``growthDelay`` beyond.
    private func wake() {
        let needed = runnable
        guard needed > 0 else { return }
        for _ in 0..<min(needed, idle) { condition.signal() }
        guard needed > idle else { return }
        if started < Self.eagerThreads {
            for _ in 0..<min(needed - idle, Self.eagerThreads - started) { startThread() }
            return
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.growthDelay) { [self] in grow() }
    }

    /// Starts a thread for each runnable lane that no idle thread will take: the busy ones are
    /// waiting (native calls, locks).
    private func grow() {
        condition.withLock {
            let needed = runnable - idle
            if needed > 0 {
                for _ in 0..<needed { startThread() }
            }
        }
    }

    /// Lock held. The new thread counts as idle from now on, so that a lane scheduled before it
    /// runs does not start yet another.
    private func startThread() {
        started += 1
        idle += 1
        let thread = Thread { [self] in main() }
        thread.name = "rlm.python"
        thread.stackSize = Self.stackSize
        thread.start()
    }

    /// Lock held. The next runnable lane, deepest level first (its jobs are what shallower jobs
    /// wait for), marked as holding a thread.
    private func take() -> PythonLane? {
        for level in stride(from: Self.levels - 1, through: 0, by: -1)
        where ready[level].pending > 0 && busy[level] < limits[level] {
            busy[level] += 1
            let lane = ready[level].pop()
            lane.holdsThread = true
            return lane
        }
        return nil
    }

    /// Lock held. Waits for a runnable lane, counting the thread as idle meanwhile.
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

    private func main() {
        // One Python thread state for the thread's whole life; the GIL is released between jobs.
        _ = PyGILState_Ensure()
        var saved = PyEval_SaveThread()
        condition.lock()
        idle -= 1
        var lane = waitForLane()
        while true {
            condition.unlock()
            lane.runNext(&saved)
            condition.lock()
            release(lane)
            if lane.jobEnded() { ready[lane.level].push(lane) }
            lane = waitForLane()
            wake()
        }
    }
}
