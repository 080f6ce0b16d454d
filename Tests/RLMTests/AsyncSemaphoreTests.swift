import Testing

@testable import RLM

@Suite("AsyncSemaphore")
struct AsyncSemaphoreTests {
    @Test("a waiter cancelled before it queues is not stranded", .timeLimit(.minutes(1)))
    func cancelledBeforeQueueing() async throws {
        let semaphore = AsyncSemaphore(permits: 0)
        // The task is cancelled before it runs, so its cancellation handler fires before the
        // waiter queues: the window in which it used to be lost (and hang).
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await semaphore.acquire(checkingCancellationFirst: false)
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        // The permit released later is still there for the next waiter.
        semaphore.release()
        try await semaphore.acquire()
    }
}
