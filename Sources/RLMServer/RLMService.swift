import Foundation
import Logging
import RLM

/// What `rlm serve` and `rlm mcp` share: tenants, admission, runs (each one a record for the
/// live page), sessions in a store, and what tenants spend.
///
/// The protocols (HTTP, MCP) only turn their requests into a ``ChatAPI/Task`` and its outcome
/// back into their replies.
public final class RLMService: Sendable {
    let configuration: RLMServerConfiguration
    let store: any SessionStore
    let registry: RunRegistry
    let sessions: SessionManager
    let directory: TenantDirectory
    let logger: Logger

    /// A service over `store`; the store stays open until ``shutdown()``.
    public init(configuration: RLMServerConfiguration, store: any SessionStore, logger: Logger = Logger(label: "rlm.server")) {
        self.configuration = configuration
        self.store = store
        self.registry = RunRegistry(recentLimit: configuration.recentRuns)
        self.sessions = SessionManager(store: store, maxLive: configuration.maxLiveSessions, logger: logger)
        self.directory = TenantDirectory(tenants: configuration.tenants, anonymous: configuration.anonymousTenant)
        self.logger = logger
    }

    /// Runs in progress.
    public var runningCount: Int { registry.runningCount }

    /// Closes the live sessions (each one's snapshot is already in the store) and the store.
    public func shutdown() async {
        await sessions.closeAll()
        await store.close()
    }

    /// Starts a run's record once the tenant may run: under its caps on runs at once and on
    /// what it has spent in all.
    func admit(_ tenant: Tenant, query: String, session: String?) async throws -> RunRegistry.Record {
        if tenant.maxTotalTokens != nil || tenant.maxTotalCostUSD != nil {
            let spent = try await store.usage(tenant: tenant.name)
            if let cap = tenant.maxTotalTokens, spent.tokens >= cap {
                throw ChatAPI.Refusal(status: 429, type: "insufficient_quota", code: "insufficient_quota",
                                      message: "this tenant has used \(spent.tokens) of its \(cap) tokens; ask the operator to raise the cap")
            }
            if let cap = tenant.maxTotalCostUSD, spent.costUSD >= cap {
                throw ChatAPI.Refusal(status: 429, type: "insufficient_quota", code: "insufficient_quota",
                                      message: String(format: "this tenant has spent $%.4f of its $%.4f; ask the operator to raise the cap", spent.costUSD, cap))
            }
        }
        guard let record = registry.start(tenant: tenant.name, query: query, session: session, limit: tenant.maxConcurrentRuns) else {
            throw ChatAPI.Refusal(status: 429, type: "rate_limit_error", code: "too_many_runs",
                                  message: "this tenant already has \(tenant.maxConcurrentRuns) runs in progress; retry when one ends")
        }
        return record
    }

    /// The RLM configuration for one of the tenant's runs.
    func rlmConfiguration(for tenant: Tenant, instructions: String?) -> RLMConfiguration {
        var rlm = configuration.rlm
        // Tenants take turns at the shared call limiter, if the server has one.
        rlm.limiterKey = tenant.name
        // Each tenant's replies are its own: a shared cache would tell one tenant what another asked.
        rlm.cache = rlm.cache?.scoped(to: tenant.name)
        if var budget = tenant.budget {
            if budget.prices.isEmpty { budget.prices = rlm.budget.prices }
            rlm.budget = budget
        }
        if let instructions {
            rlm.extraInstructions = [rlm.extraInstructions, instructions].compactMap { $0 }.joined(separator: "\n\n")
        }
        return rlm
    }

    /// Runs `task` for `tenant` (in `session`, when given), recording every event in `record`;
    /// what the run cost is added to the tenant's total, however it ends.
    func execute(_ task: ChatAPI.Task, tenant: Tenant, session: String?, record: RunRegistry.Record) async throws -> RLMResult {
        let rlm = RLM(configuration: rlmConfiguration(for: tenant, instructions: task.instructions))
        let logger = self.logger
        var metadata: Logger.Metadata = ["rlm.run": "\(record.id)", "rlm.tenant": "\(tenant.name)"]
        if let session { metadata["rlm.session"] = "\(session)" }
        logger.info("run started", metadata: metadata)
        do {
            let result: RLMResult
            if let session {
                result = try await sessions.turn(
                    id: session, tenant: tenant.name, rlm: rlm, query: task.query, context: task.context, observer: record.record)
            } else {
                guard let context = task.context else {
                    throw ChatAPI.Refusal.invalid("give a context: in the message, `rlm_context` or `rlm_files` (only a session turn may go without one)")
                }
                result = try await rlm.complete(query: task.query, context: context, observer: record.record)
            }
            registry.finish(record, .answered, answer: result.answer, usage: result.usage)
            await charge(tenant, result.usage)
            logger.info("run answered", metadata: metadata.merging(["rlm.calls": "\(result.usage.total.calls)"]) { $1 })
            return result
        } catch let error as RLMError where error.code == .limitReached {
            registry.finish(record, .limitReached, answer: error.partialAnswer, error: error.message, usage: error.usage)
            if let usage = error.usage { await charge(tenant, usage) }
            logger.info("run stopped by a limit", metadata: metadata.merging(["rlm.limit": "\(error.limit.map { "\($0)" } ?? "?")"]) { $1 })
            throw error
        } catch is CancellationError {
            registry.finish(record, .cancelled, error: "cancelled")
            logger.info("run cancelled", metadata: metadata)
            throw CancellationError()
        } catch {
            registry.finish(record, .failed, error: "\(error)")
            if let usage = (error as? RLMError)?.usage { await charge(tenant, usage) }
            logger.warning("run failed", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            throw error
        }
    }

    private func charge(_ tenant: Tenant, _ usage: UsageSummary) async {
        let tokens = usage.total.tokens.inputTokens + usage.total.tokens.outputTokens
        do {
            try await store.addUsage(tenant: tenant.name, tokens: tokens, costUSD: usage.total.costUSD)
        } catch {
            logger.error("a run's usage could not be added to the tenant's total", metadata: ["rlm.tenant": "\(tenant.name)", "error": "\(error)"])
        }
    }

    // MARK: Sessions

    func createSession(tenant: Tenant) async throws -> StoredSession {
        let id = "sess_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let now = Date()
        try await store.create(id: id, tenant: tenant.name, at: now)
        return StoredSession(id: id, tenant: tenant.name, created: now, updated: now, version: 0, turns: 0, snapshot: nil)
    }

    func session(id: String, tenant: Tenant) async throws -> StoredSession {
        guard let stored = try await store.load(id: id, tenant: tenant.name) else { throw SessionManager.notFound(id) }
        return stored
    }

    func deleteSession(id: String, tenant: Tenant) async throws {
        guard try await store.delete(id: id, tenant: tenant.name) else { throw SessionManager.notFound(id) }
        await sessions.forget(id)
    }
}

/// The sessions whose REPLs are in memory, kept in step with the store: a turn first checks
/// that no other server has saved a turn since this one's, and restores the session from the
/// store when one has.
actor SessionManager {
    private struct Live {
        var session: RLMSession
        var version: Int
        var lastUsed: ContinuousClock.Instant
        var busy: Bool
    }

    private let store: any SessionStore
    private let maxLive: Int
    private let logger: Logger
    private var live: [String: Live] = [:]

    init(store: any SessionStore, maxLive: Int, logger: Logger) {
        self.store = store
        self.maxLive = max(1, maxLive)
        self.logger = logger
    }

    static func notFound(_ id: String) -> ChatAPI.Refusal {
        ChatAPI.Refusal(status: 404, type: "invalid_request_error", code: "session_not_found",
                        message: "no session \(id) for this tenant: create one with POST /v1/sessions", param: "session")
    }

    var liveCount: Int { live.count }

    func turn(
        id: String, tenant: String, rlm: RLM, query: String, context: RLMContext?, observer: @escaping @Sendable (RLMEvent) -> Void
    ) async throws -> RLMResult {
        guard let stored = try await store.load(id: id, tenant: tenant) else { throw Self.notFound(id) }
        if live[id]?.busy == true {
            throw ChatAPI.Refusal(status: 409, type: "invalid_request_error", code: "session_busy",
                                  message: "session \(id) is answering another query; send the next one when it ends", param: "session")
        }
        let session: RLMSession
        if let entry = live[id], entry.version == stored.version {
            session = entry.session
        } else {
            // New here, or another server took a turn since: start from the stored snapshot.
            if let stale = live[id] { await stale.session.close() }
            session = stored.snapshot.map { rlm.session(restoring: $0) } ?? rlm.session()
        }
        live[id] = Live(session: session, version: stored.version, lastUsed: .now, busy: true)
        await evict()
        let outcome: Result<RLMResult, any Error>
        do {
            if let context {
                outcome = .success(try await session.complete(query: query, context: context, observer: observer))
            } else {
                outcome = .success(try await session.complete(query: query, observer: observer))
            }
        } catch {
            outcome = .failure(error)
        }
        // The REPL's work is kept after a limit too, as `rlm run --session` does.
        var saved: Int?
        if case .failure(let error) = outcome, !((error as? RLMError)?.code == .limitReached) {
            saved = nil
        } else {
            do {
                let snapshot = try await session.snapshot()
                saved = try await store.save(id: id, tenant: tenant, snapshot: snapshot, expectedVersion: stored.version, at: Date())
                if saved == nil {
                    logger.warning("another server saved a turn of this session first; this turn's answer is returned but not kept",
                                   metadata: ["rlm.session": "\(id)"])
                }
            } catch {
                logger.error("a session turn could not be saved", metadata: ["rlm.session": "\(id)", "error": "\(error)"])
            }
        }
        if let saved {
            live[id] = Live(session: session, version: saved, lastUsed: .now, busy: false)
        } else {
            // Not saved (failed, or another server won): the next turn starts from the store.
            live[id] = nil
            await session.close()
        }
        return try outcome.get()
    }

    /// Closes the least recently used idle sessions beyond the limit.
    private func evict() async {
        while live.count > maxLive {
            guard let (id, entry) = live.filter({ !$0.value.busy }).min(by: { $0.value.lastUsed < $1.value.lastUsed }) else { return }
            live[id] = nil
            await entry.session.close()
        }
    }

    func forget(_ id: String) async {
        if let entry = live.removeValue(forKey: id) { await entry.session.close() }
    }

    func closeAll() async {
        let all = live.values.map(\.session)
        live = [:]
        for session in all { await session.close() }
    }
}
