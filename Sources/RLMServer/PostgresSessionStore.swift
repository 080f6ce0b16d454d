import Foundation
import Logging
import NIOCore
import PostgresNIO
import RLM

/// A ``SessionStore`` in PostgreSQL, for servers on several machines: any of them can take a
/// session's next turn. Tables are made on first use (`rlm_sessions`, `rlm_tenant_usage`).
public final class PostgresSessionStore: SessionStore {
    private let client: PostgresClient
    private let running: Task<Void, Never>
    /// Where the store is, without its password.
    public let location: String

    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`; add `?sslmode=disable`
    /// for a server without TLS, as on loopback) and makes the tables if needed. Without a
    /// password in the URL, `$PGPASSWORD` is used, as libpq does, so that it need not appear
    /// on a command line.
    public static func open(
        url: String, environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger = Logger(label: "rlm.store")
    ) async throws -> PostgresSessionStore {
        let (configuration, location) = try clientConfiguration(url: url, environment: environment)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let store = PostgresSessionStore(client: client, location: location)
        do {
            try await store.client.withTransaction(logger: logger) { connection in
                // Two servers starting at once must not both create the tables.
                try await connection.query("SELECT pg_advisory_xact_lock(72311)", logger: logger)
                try await connection.query("""
                    CREATE TABLE IF NOT EXISTS rlm_sessions (
                        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
                        updated DOUBLE PRECISION NOT NULL, version BIGINT NOT NULL, turns BIGINT NOT NULL, snapshot BYTEA)
                    """, logger: logger)
                try await connection.query("CREATE INDEX IF NOT EXISTS rlm_sessions_tenant ON rlm_sessions (tenant, updated)", logger: logger)
                try await connection.query("""
                    CREATE TABLE IF NOT EXISTS rlm_tenant_usage (tenant TEXT PRIMARY KEY, tokens BIGINT NOT NULL, cost DOUBLE PRECISION NOT NULL)
                    """, logger: logger)
            }
        } catch {
            await store.close()
            throw SessionStoreError(message: "cannot prepare the session store \(location): \(String(reflecting: error))")
        }
        return store
    }

    /// The client configuration for `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=…]`,
    /// the password else from `$PGPASSWORD`) and where it points, without the password.
    static func clientConfiguration(url: String, environment: [String: String]) throws -> (PostgresClient.Configuration, String) {
        guard let parts = URLComponents(string: url), ["postgres", "postgresql"].contains(parts.scheme ?? ""),
              let host = parts.host, !host.isEmpty, let user = parts.user, !user.isEmpty else {
            throw SessionStoreError(message: "the PostgreSQL URL should look like postgres://USER:PASSWORD@HOST:PORT/DATABASE (got a URL without a user or host)")
        }
        let database = parts.path.hasPrefix("/") ? String(parts.path.dropFirst()) : parts.path
        let sslMode = parts.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        let tls: PostgresClient.Configuration.TLS = sslMode == "disable" ? .disable
            : sslMode == "require" ? .require(.makeClientConfiguration()) : .prefer(.makeClientConfiguration())
        var configuration = PostgresClient.Configuration(
            host: host, port: parts.port ?? 5432, username: user, password: parts.password ?? environment["PGPASSWORD"],
            database: database.isEmpty ? nil : database, tls: tls)
        configuration.options.maximumConnections = 8
        return (configuration, "postgres://\(user)@\(host):\(parts.port ?? 5432)/\(database)")
    }

    private init(client: PostgresClient, location: String) {
        self.client = client
        self.location = location
        running = Task { await client.run() }
    }

    public func create(id: String, tenant: String, at date: Date) async throws {
        let time = date.timeIntervalSince1970
        try await run {
            try await client.query("INSERT INTO rlm_sessions (id, tenant, created, updated, version, turns) VALUES (\(id), \(tenant), \(time), \(time), 0, 0)")
        }
    }

    public func load(id: String, tenant: String) async throws -> StoredSession? {
        try await run {
            let rows = try await client.query("SELECT id, tenant, created, updated, version, turns, snapshot FROM rlm_sessions WHERE id = \(id) AND tenant = \(tenant)")
            for try await (id, tenant, created, updated, version, turns, snapshot) in rows.decode((String, String, Double, Double, Int, Int, ByteBuffer?).self) {
                var decoded: RLMSession.Snapshot?
                if let snapshot {
                    do {
                        decoded = try JSONDecoder().decode(RLMSession.Snapshot.self, from: Data(snapshot.readableBytesView))
                    } catch {
                        throw SessionStoreError(message: "session \(id) has a snapshot this version cannot read: \(error)")
                    }
                }
                return StoredSession(id: id, tenant: tenant, created: Date(timeIntervalSince1970: created),
                                     updated: Date(timeIntervalSince1970: updated), version: version, turns: turns, snapshot: decoded)
            }
            return nil
        }
    }

    public func list(tenant: String) async throws -> [StoredSession] {
        try await run {
            let rows = try await client.query("SELECT id, tenant, created, updated, version, turns FROM rlm_sessions WHERE tenant = \(tenant) ORDER BY updated DESC")
            var sessions: [StoredSession] = []
            for try await (id, tenant, created, updated, version, turns) in rows.decode((String, String, Double, Double, Int, Int).self) {
                sessions.append(StoredSession(id: id, tenant: tenant, created: Date(timeIntervalSince1970: created),
                                              updated: Date(timeIntervalSince1970: updated), version: version, turns: turns, snapshot: nil))
            }
            return sessions
        }
    }

    public func save(id: String, tenant: String, snapshot: RLMSession.Snapshot, expectedVersion: Int, at date: Date) async throws -> Int? {
        let data = ByteBuffer(bytes: try JSONEncoder().encode(snapshot))
        let turns = snapshot.turns.count
        let time = date.timeIntervalSince1970
        return try await run {
            let rows = try await client.query("""
                UPDATE rlm_sessions SET snapshot = \(data), version = version + 1, turns = \(turns), updated = \(time)
                WHERE id = \(id) AND tenant = \(tenant) AND version = \(expectedVersion) RETURNING version
                """)
            for try await version in rows.decode(Int.self) { return version }
            return nil
        }
    }

    public func delete(id: String, tenant: String) async throws -> Bool {
        try await run {
            let rows = try await client.query("DELETE FROM rlm_sessions WHERE id = \(id) AND tenant = \(tenant) RETURNING id")
            for try await _ in rows.decode(String.self) { return true }
            return false
        }
    }

    public func addUsage(tenant: String, tokens: Int, costUSD: Double) async throws {
        try await run {
            try await client.query("""
                INSERT INTO rlm_tenant_usage (tenant, tokens, cost) VALUES (\(tenant), \(tokens), \(costUSD))
                ON CONFLICT (tenant) DO UPDATE SET tokens = rlm_tenant_usage.tokens + EXCLUDED.tokens, cost = rlm_tenant_usage.cost + EXCLUDED.cost
                """)
        }
    }

    public func usage(tenant: String) async throws -> (tokens: Int, costUSD: Double) {
        try await run {
            let rows = try await client.query("SELECT tokens, cost FROM rlm_tenant_usage WHERE tenant = \(tenant)")
            for try await (tokens, cost) in rows.decode((Int, Double).self) { return (tokens, cost) }
            return (0, 0)
        }
    }

    public func close() async {
        running.cancel()
        _ = await running.value
    }

    @discardableResult
    private func run<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as SessionStoreError {
            throw error
        } catch {
            throw SessionStoreError(message: "the session store \(location) failed: \(String(reflecting: error))")
        }
    }
}
