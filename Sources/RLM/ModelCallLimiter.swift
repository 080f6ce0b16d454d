import Synchronization
#if RLM_TSAN_LOCKS
import PythonRuntime  // its SanitizerMutex is this module's Mutex under ThreadSanitizer
#endif

/// Limits model calls across every run that shares it: how many are in flight at once and,
/// optionally, how many tokens start per unit of time. A server creates one per provider and
/// puts it in each tenant's ``RLMConfiguration/callLimiter``.
///
/// Freed capacity goes to the waiting clients in turn (round-robin over ``RLMConfiguration/limiterKey``,
/// one run each by default), first come first served within a client, so one tenant's
/// 1,000-prompt batch does not starve another tenant's single call.
///
/// ```swift
/// let openAILimit = ModelCallLimiter(maxConcurrentCalls: 64, tokenRate: .init(tokens: 2_000_000, per: .seconds(60)))
/// var configuration = RLMConfiguration(rootModel: gpt)
/// configuration.callLimiter = openAILimit
/// configuration.limiterKey = tenant.id
/// ```
///
/// A call reserves its prompt's estimated tokens (``TokenEstimate``) before it starts and settles
/// the difference with the provider's reported usage when it ends; a call larger than the whole
/// rate waits for a full allowance. The root's turns and sub-calls at every depth pass through it;
/// a run's own ``RLMConfiguration/maxConcurrentSubcalls`` still applies first.
public final class ModelCallLimiter: Sendable {
    /// Tokens that may start per period.
    public struct TokenRate: Sendable, Hashable {
        /// Tokens per period; also the most that may start at once after a quiet spell.
        public var tokens: Int
        /// The period.
        public var period: Duration

        /// `tokens` per `period`.
        public init(tokens: Int, per period: Duration) {
            self.tokens = max(tokens, 1)
            self.period = period > .zero ? period : .seconds(60)
        }
    }

    /// The most calls in flight at once.
    public let maxConcurrentCalls: Int
    /// The token rate, if limited.
    public let tokenRate: TokenRate?

    private struct Waiter {
        var id: UInt64
        var tokens: Int
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var inFlight = 0
        var queues: [String: [Waiter]] = [:]
        /// Clients with waiters, in the order they first waited; `next` is whose turn it is.
        var ring: [String] = []
        var next = 0
        var allowance: Double
        var refilled: ContinuousClock.Instant
        var timerPending = false
        var nextID: UInt64 = 0
        /// Waiters that have an id but are not queued yet, and those of them already cancelled.
        var unqueued: Set<UInt64> = []
        var cancelledEarly: Set<UInt64> = []
    }

    private let state: Mutex<State>

    /// Creates a limiter for `maxConcurrentCalls` calls in flight and, when given, `tokenRate`.
    public init(maxConcurrentCalls: Int, tokenRate: TokenRate? = nil) {
        self.maxConcurrentCalls = max(maxConcurrentCalls, 1)
        self.tokenRate = tokenRate
        state = Mutex(State(allowance: Double(tokenRate?.tokens ?? 0), refilled: .now))
    }

    /// Calls in flight now.
    public var inFlight: Int { state.withLock { $0.inFlight } }
    /// Calls waiting now.
    public var waiting: Int { state.withLock { $0.queues.values.reduce(0) { $0 + $1.count } } }

    /// Waits for a turn for `client`, runs `body`, and settles the token reservation with what
    /// `body` reports it used. Throws `CancellationError` if cancelled while waiting.
    public func withPermit<T>(
        client: String, estimatedTokens: Int, _ body: () async throws -> (value: T, usedTokens: Int)
    ) async throws -> T {
        try await acquire(client: client, tokens: estimatedTokens)
        var used = estimatedTokens
        defer { release(reserved: estimatedTokens, used: used) }
        let (value, tokens) = try await body()
        used = tokens
        return value
    }

    func acquire(client: String, tokens: Int) async throws {
        try Task.checkCancellation()
        let id: UInt64? = state.withLock { state in
            refill(&state)
            if state.queues.isEmpty && state.inFlight < maxConcurrentCalls && fits(tokens, state) {
                take(tokens, &state)
                return nil
            }
            state.nextID += 1
            state.unqueued.insert(state.nextID)
            return state.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resume: (() -> Void)? = state.withLock { state in
                    state.unqueued.remove(id)
                    if state.cancelledEarly.remove(id) != nil {
                        return { continuation.resume(throwing: CancellationError()) }
                    }
                    if state.queues[client] == nil { state.ring.append(client) }
                    state.queues[client, default: []].append(Waiter(id: id, tokens: tokens, continuation: continuation))
                    return nil
                }
                resume?()
                grant()
            }
        } onCancel: {
            let waiter: Waiter? = state.withLock { state in
                guard let queue = state.queues[client], let index = queue.firstIndex(where: { $0.id == id }) else {
                    // Not queued yet: the enqueue sees this and gives up. Already granted: nothing to do.
                    if state.unqueued.contains(id) { state.cancelledEarly.insert(id) }
                    return nil
                }
                let waiter = state.queues[client]?.remove(at: index)
                if state.queues[client]?.isEmpty == true { removeClient(client, &state) }
                return waiter
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    func release(reserved: Int, used: Int) {
        state.withLock { state in
            state.inFlight -= 1
            // Settle: a call that used more than it reserved leaves a debt the allowance repays.
            if tokenRate != nil { state.allowance -= Double(used - reserved) }
        }
        grant()
    }

    /// Hands freed capacity to waiters in turn.
    private func grant() {
        var granted: [CheckedContinuation<Void, any Error>] = []
        var wait: Duration?
        state.withLock { state in
            refill(&state)
            while state.inFlight < maxConcurrentCalls && !state.ring.isEmpty {
                let index = state.next % state.ring.count
                let client = state.ring[index]
                guard let head = state.queues[client]?.first else {
                    removeClient(client, &state)
                    continue
                }
                guard fits(head.tokens, state) else {
                    // The client whose turn it is waits for its allowance; others do not overtake it.
                    if !state.timerPending, let rate = tokenRate {
                        state.timerPending = true
                        let needed = Double(min(head.tokens, rate.tokens)) - state.allowance
                        wait = rate.period * (needed / Double(rate.tokens))
                    }
                    break
                }
                state.queues[client]?.removeFirst()
                take(head.tokens, &state)
                granted.append(head.continuation)
                if state.queues[client]?.isEmpty == true {
                    removeClient(client, &state)
                } else {
                    state.next = index + 1
                }
            }
        }
        for continuation in granted { continuation.resume() }
        if let wait {
            Task { [self] in
                try? await Task.sleep(for: wait)
                state.withLock { $0.timerPending = false }
                grant()
            }
        }
    }

    private func fits(_ tokens: Int, _ state: State) -> Bool {
        guard let rate = tokenRate else { return true }
        return state.allowance >= Double(min(tokens, rate.tokens))
    }

    private func take(_ tokens: Int, _ state: inout State) {
        state.inFlight += 1
        if tokenRate != nil { state.allowance -= Double(tokens) }
    }

    private func refill(_ state: inout State) {
        guard let rate = tokenRate else { return }
        let now = ContinuousClock.now
        let elapsed = now - state.refilled
        state.refilled = now
        state.allowance = min(Double(rate.tokens), state.allowance + Double(rate.tokens) * (elapsed / rate.period))
    }

    private func removeClient(_ client: String, _ state: inout State) {
        state.queues[client] = nil
        guard let index = state.ring.firstIndex(of: client) else { return }
        state.ring.remove(at: index)
        if index < state.next { state.next -= 1 }
        if state.ring.isEmpty { state.next = 0 }
    }
}
