import Foundation
import RLM

/// Who may use a server, with what: a bearer token, a budget for each run, and caps on what
/// the tenant may spend in all.
///
/// Each tenant sees only its own runs and sessions. Tokens are compared in constant time and
/// never logged.
public struct Tenant: Sendable {
    /// The tenant's name, as it appears in logs, the live page and the store.
    public var name: String
    /// The bearer token that identifies the tenant (`Authorization: Bearer TOKEN`).
    public var token: String
    /// The budget of each of the tenant's runs; `nil` takes the server's.
    public var budget: Budget?
    /// Runs the tenant may have in progress at once; more are refused with 429.
    public var maxConcurrentRuns: Int
    /// Tokens (input plus output, all runs, kept in the store across restarts) after which
    /// the tenant's requests are refused with 429; `nil` for no cap.
    public var maxTotalTokens: Int?
    /// US dollars (all runs, kept in the store) after which requests are refused; `nil` for no cap.
    public var maxTotalCostUSD: Double?

    public init(
        name: String, token: String, budget: Budget? = nil, maxConcurrentRuns: Int = 8,
        maxTotalTokens: Int? = nil, maxTotalCostUSD: Double? = nil
    ) {
        self.name = name
        self.token = token
        self.budget = budget
        self.maxConcurrentRuns = maxConcurrentRuns
        self.maxTotalTokens = maxTotalTokens
        self.maxTotalCostUSD = maxTotalCostUSD
    }

    /// The tenant of a server that has none configured: every request is theirs.
    public static let anonymous = Tenant(name: "anonymous", token: "", maxConcurrentRuns: 64)
}

/// How an ``RLMServer`` answers.
public struct RLMServerConfiguration: Sendable {
    /// The RLM behind every request: models, depth, isolation, the default budget.
    public var rlm: RLMConfiguration
    /// The name clients put in `"model"`; `GET /v1/models` lists it.
    public var modelName: String
    /// The tenants; empty for a server without authentication (it should listen on loopback).
    public var tenants: [Tenant]
    /// Directories whose files requests may name as contexts (`rlm_files`); empty: none.
    public var allowedRoots: [String]
    /// The largest request body in bytes; larger ones get 413.
    public var maxBodyBytes: Int
    /// Live sessions (REPLs in memory) kept at once; the least recently used beyond it are
    /// closed (their snapshot is in the store, so their next turn restores them).
    public var maxLiveSessions: Int
    /// Finished runs the live page keeps.
    public var recentRuns: Int
    /// Who every request is on a server without ``tenants``: its budget and caps apply to all.
    public var anonymousTenant: Tenant = .anonymous

    public init(
        rlm: RLMConfiguration, modelName: String = "rlm", tenants: [Tenant] = [], allowedRoots: [String] = [],
        maxBodyBytes: Int = 64 << 20, maxLiveSessions: Int = 256, recentRuns: Int = 50
    ) {
        self.rlm = rlm
        self.modelName = modelName
        self.tenants = tenants
        self.allowedRoots = allowedRoots
        self.maxBodyBytes = maxBodyBytes
        self.maxLiveSessions = maxLiveSessions
        self.recentRuns = recentRuns
    }
}

/// Finds the tenant a bearer token belongs to.
struct TenantDirectory: Sendable {
    let tenants: [Tenant]
    var anonymous: Tenant = .anonymous

    var isOpen: Bool { tenants.isEmpty }

    /// The tenant whose token is `token`, comparing every tenant's token in constant time.
    func tenant(token: String?) -> Tenant? {
        if tenants.isEmpty { return anonymous }
        guard let token else { return nil }
        let given = Array(token.utf8)
        var found: Tenant?
        for tenant in tenants where Self.constantTimeEqual(Array(tenant.token.utf8), given) {
            found = tenant
        }
        return found
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}
