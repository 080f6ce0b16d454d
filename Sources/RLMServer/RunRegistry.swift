import Foundation
import RLM
import Synchronization

/// The runs a server has in progress and has recently finished, with their events, for the
/// live page and for per-tenant limits on runs at once.
final class RunRegistry: Sendable {
    /// How a run stands.
    enum Status: String, Sendable, Codable {
        case running, answered, limitReached = "limit_reached", failed, cancelled
    }

    /// What the live page lists about a run.
    struct Summary: Sendable, Codable {
        var id: String
        var tenant: String
        var query: String
        var session: String?
        var started: Date
        var finished: Date?
        var status: Status
        var answer: String?
        var error: String?
        var events: Int
        var calls: Int
        var tokens: Int
    }

    /// One run: its summary, its events, and who is watching them.
    final class Record: Sendable {
        let id: String
        let tenant: String
        private let state: Mutex<State>
        private let maxEvents: Int

        struct State {
            var summary: Summary
            var events: [RLMEvent] = []
            var dropped = 0
            var watchers: [UUID: AsyncStream<RLMEvent>.Continuation] = [:]
        }

        init(summary: Summary, maxEvents: Int) {
            id = summary.id
            tenant = summary.tenant
            state = Mutex(State(summary: summary))
            self.maxEvents = maxEvents
        }

        var summary: Summary { state.withLock { $0.summary } }

        /// Adds an event and hands it to every watcher. Called on the thread that made the event.
        func record(_ event: RLMEvent) {
            state.withLock { state in
                if state.events.count < maxEvents { state.events.append(event) } else { state.dropped += 1 }
                state.summary.events += 1
                if case .modelReplied(_, _, let usage, _) = event.kind {
                    state.summary.calls += 1
                    state.summary.tokens += usage.inputTokens + usage.outputTokens
                } else if case .subcallFinished(_, _, _, let usage, _, _) = event.kind {
                    state.summary.calls += 1
                    state.summary.tokens += usage.inputTokens + usage.outputTokens
                }
                for watcher in state.watchers.values { watcher.yield(event) }
            }
        }

        /// Every event so far, then the new ones as they happen; the stream ends with the run.
        func watch() -> AsyncStream<RLMEvent> {
            let (stream, continuation) = AsyncStream<RLMEvent>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
            let key = UUID()
            state.withLock { state in
                for event in state.events { continuation.yield(event) }
                if state.summary.status != .running {
                    continuation.finish()
                } else {
                    state.watchers[key] = continuation
                }
            }
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.watchers.removeValue(forKey: key) }
            }
            return stream
        }

        func finish(_ status: Status, answer: String?, error: String?, usage: UsageSummary?) {
            let watchers = state.withLock { state in
                state.summary.status = status
                state.summary.finished = Date()
                state.summary.answer = answer.map { String($0.prefix(2_000)) }
                state.summary.error = error
                if let usage {
                    state.summary.calls = usage.total.calls
                    state.summary.tokens = usage.total.tokens.inputTokens + usage.total.tokens.outputTokens
                }
                defer { state.watchers = [:] }
                return Array(state.watchers.values)
            }
            for watcher in watchers { watcher.finish() }
        }
    }

    private struct State {
        var running: [String: Record] = [:]
        var recent: [Record] = []
        var next = 1
    }

    private let state = Mutex(State())
    private let recentLimit: Int
    private let maxEvents: Int

    init(recentLimit: Int, maxEventsPerRun: Int = 20_000) {
        self.recentLimit = recentLimit
        self.maxEvents = maxEventsPerRun
    }

    /// Starts a record for `tenant`, or returns `nil` when the tenant already has `limit` runs.
    func start(tenant: String, query: String, session: String?, limit: Int) -> Record? {
        state.withLock { state in
            guard state.running.values.filter({ $0.tenant == tenant }).count < limit else { return nil }
            let id = "run_\(state.next)_\(UUID().uuidString.prefix(8).lowercased())"
            state.next += 1
            let record = Record(
                summary: Summary(id: id, tenant: tenant, query: String(query.prefix(300)), session: session, started: Date(),
                                 status: .running, events: 0, calls: 0, tokens: 0),
                maxEvents: maxEvents)
            state.running[id] = record
            return record
        }
    }

    /// Ends a record and moves it to the recent ones.
    func finish(_ record: Record, _ status: Status, answer: String? = nil, error: String? = nil, usage: UsageSummary? = nil) {
        record.finish(status, answer: answer, error: error, usage: usage)
        state.withLock { state in
            state.running[record.id] = nil
            state.recent.insert(record, at: 0)
            if state.recent.count > recentLimit { state.recent.removeLast(state.recent.count - recentLimit) }
        }
    }

    /// The tenant's runs: those in progress first, then the recent ones.
    func runs(tenant: String) -> [Summary] {
        state.withLock { state in
            let running = state.running.values.filter { $0.tenant == tenant }.map(\.summary).sorted { $0.started > $1.started }
            return running + state.recent.filter { $0.tenant == tenant }.map(\.summary)
        }
    }

    /// The tenant's run with this id, in progress or recent.
    func record(id: String, tenant: String) -> Record? {
        state.withLock { state in
            let record = state.running[id] ?? state.recent.first { $0.id == id }
            return record?.tenant == tenant ? record : nil
        }
    }

    /// Runs in progress, all tenants.
    var runningCount: Int { state.withLock { $0.running.count } }
}
