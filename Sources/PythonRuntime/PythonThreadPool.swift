import CPython
import Foundation

/// The OS threads that run Python for every namespace in the process.
///
/// A namespace is a ``PythonLane``: a queue of jobs that run one at a time, in order, on whichever
/// pool thread is free. An idle namespace holds no thread. A job that waits (a native call whose
/// Swift work is in flight, a lock) keeps its thread, so the pool starts another whenever a lane
/// is ready and no thread is idle: the pool grows to the most jobs that ever ran at once, never
/// deadlocks a parent waiting on a child's cells, and never shrinks. Its threads never end, so a
/// thread identifier, which keys output capture and stops, always names the same thread.
final class PythonThreadPool: @unchecked Sendable {
    static let shared = PythonThreadPool()

    /// The stack of each thread: deep recursion in model code needs more than the default.
    static let stackSize = 16 << 20

    private let condition = NSCondition()
    private var ready: [PythonLane] = []
    private var head = 0
    private var idle = 0
    private var started = 0

    /// The threads the pool has started.
    var threadCount: Int { condition.withLock { started } }

    /// Threads started as soon as a lane finds none idle. Past these, a new thread starts only
    /// for a lane that has waited ``growthDelay`` for one: a thread that has just finished a job
    /// (and resumed the caller, who submits the next) is about to look for work again.
    static let eagerThreads = 2 * ProcessInfo.processInfo.activeProcessorCount

    /// How long a ready lane waits for a busy thread to come back before the pool grows for it.
    static let growthDelay: DispatchTimeInterval = .milliseconds(1)

    /// Queues `lane`, which has a job to run.
    func schedule(_ lane: PythonLane) {
        let check = condition.withLock { () -> Bool in
            ready.append(lane)
            // Every ready lane needs a thread of its own: an idle one that has not yet woken for
            // an earlier lane does not count twice.
            if idle >= ready.count - head {
                condition.signal()
                return false
            }
            if started < Self.eagerThreads {
                startThread()
                return false
            }
            return true
        }
        if check {
            DispatchQueue.global().asyncAfter(deadline: .now() + Self.growthDelay) { [self] in grow() }
        }
    }

    /// Starts a thread for each ready lane that no idle thread will take: the busy ones are
    /// waiting (native calls, locks), and a parent waiting on its children's cells must not
    /// wait for a thread those cells need.
    private func grow() {
        condition.withLock {
            let pending = ready.count - head
            if pending > idle {
                for _ in 0..<(pending - idle) { startThread() }
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

    private func next(fresh: Bool) -> PythonLane {
        condition.lock()
        defer { condition.unlock() }
        if fresh { idle -= 1 }
        while head == ready.count {
            idle += 1
            condition.wait()
            idle -= 1
        }
        let lane = ready[head]
        head += 1
        if head > 64 && head * 2 > ready.count {
            ready.removeFirst(head)
            head = 0
        }
        return lane
    }

    private func main() {
        // One Python thread state for the thread's whole life; the GIL is released between jobs.
        _ = PyGILState_Ensure()
        var saved = PyEval_SaveThread()
        next(fresh: true).runNext(&saved)
        while true {
            next(fresh: false).runNext(&saved)
        }
    }
}
