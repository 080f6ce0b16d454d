import Synchronization
#if RLM_TSAN_LOCKS
import PythonRuntime  // its SanitizerMutex is this module's Mutex under ThreadSanitizer
#endif

/// The live budget of one recursion tree, shared by every node and call in it.
///
/// All updates go through one lock, so concurrent children and batched calls never lose an
/// update. Calls are counted when they start (so `maxModelCalls` is never exceeded); tokens and
/// cost are counted when a call returns, so calls already in flight when a token or cost limit
/// trips may finish past it.
final class BudgetTracker: Sendable {
    private struct State {
        var startedCalls = 0
        var usage = UsageSummary()
        var tripped: Limit?
    }

    let budget: Budget
    private let state = Mutex(State())
    private let onTrip: @Sendable (Limit) -> Void
    let start = ContinuousClock.now

    /// - Parameter onTrip: called once, when the first limit trips (to stop the tree).
    init(budget: Budget, onTrip: @escaping @Sendable (Limit) -> Void) {
        self.budget = budget
        self.onTrip = onTrip
    }

    /// The limit that tripped, if any.
    var tripped: Limit? { state.withLock { $0.tripped } }

    /// A snapshot of the usage so far.
    var usage: UsageSummary { state.withLock { $0.usage } }

    /// Trips `limit` (the first trip wins) and reports it.
    func trip(_ limit: Limit) {
        let first = state.withLock { state -> Bool in
            guard state.tripped == nil else { return false }
            state.tripped = limit
            return true
        }
        if first { onTrip(limit) }
    }

    /// Reserves one model call, or throws the limit that forbids it.
    ///
    /// - Parameter force: reserve even past the limits (the single final-answer call that
    ///   ``RLMConfiguration/finalAnswerOnLimit`` allows).
    func reserveCall(force: Bool = false) throws(RLMError) {
        let verdict = state.withLock { state -> Limit? in
            if force {
                state.startedCalls += 1
                return nil
            }
            if let tripped = state.tripped { return tripped }
            if let limit = exceededLimit(state) { return limit }
            state.startedCalls += 1
            return nil
        }
        if let verdict {
            trip(verdict)
            throw RLMError.limitReached(verdict)
        }
    }

    private func exceededLimit(_ state: State) -> Limit? {
        if let max = budget.maxModelCalls, state.startedCalls >= max { return .modelCalls }
        if let max = budget.maxTokens, state.usage.total.tokens.totalTokens >= max { return .tokens }
        if let max = budget.maxCostUSD, state.usage.total.costUSD >= max { return .cost }
        if let deadline = budget.deadline, ContinuousClock.now - start >= deadline { return .deadline }
        return nil
    }

    /// Records a finished call and trips a token or cost limit it crossed.
    /// Records a cache lookup for `model`: a hit that saved `saved` tokens, or a miss (`nil`).
    func recordLookup(model: String, depth: Int, saved: TokenUsage?) {
        let cost = saved.map { budget.prices[model]?.cost(of: $0) ?? 0 } ?? 0
        state.withLock { $0.usage.recordLookup(model: model, depth: depth, saved: saved, cost: cost) }
    }

    func record(model: String, depth: Int, tokens: TokenUsage) -> Double {
        let cost = budget.prices[model]?.cost(of: tokens) ?? 0
        let crossed = state.withLock { state -> Limit? in
            state.usage.record(model: model, depth: depth, tokens: tokens, cost: cost)
            if let max = budget.maxTokens, state.usage.total.tokens.totalTokens > max { return .tokens }
            if let max = budget.maxCostUSD, state.usage.total.costUSD > max { return .cost }
            return nil
        }
        if let crossed { trip(crossed) }
        return cost
    }
}
