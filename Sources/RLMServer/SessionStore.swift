import Foundation
import Logging
import NIOCore
import RLM
import RLMCache
import SQLiteNIO

/// A session as the store keeps it.
public struct StoredSession: Sendable {
    public var id: String
    public var tenant: String
    public var created: Date
    public var updated: Date
    /// Goes up by one with every saved turn; a save names the version it started from, so two
    /// servers sharing a store cannot overwrite each other's turns.
    public var version: Int
    /// Turns taken so far.
    public var turns: Int
    /// The session's snapshot; `nil` before its first turn, and in listings.
    public var snapshot: RLMSession.Snapshot?

    public init(id: String, tenant: String, created: Date, updated: Date, version: Int, turns: Int, snapshot: RLMSession.Snapshot?) {
        self.id = id
        self.tenant = tenant
        self.created = created
        self.updated = updated
        self.version = version
        self.turns = turns
        self.snapshot = snapshot
    }
}

/// Where a server keeps sessions and what tenants have spent, so both survive a restart and
/// servers that share a store can continue each other's sessions.
///
/// Every call names the tenant: a session of another tenant does not exist for it.
public protocol SessionStore: Sendable {
    /// Adds an empty session (version 0).
    func create(id: String, tenant: String, at date: Date) async throws
    /// The session with its snapshot, or `nil` when the tenant has no such session.
    func load(id: String, tenant: String) async throws -> StoredSession?
    /// The tenant's sessions, newest first, without snapshots.
    func list(tenant: String) async throws -> [StoredSession]
    /// Saves a turn's snapshot if the session is still at `expectedVersion`; returns the new
    /// version, or `nil` when another server saved a turn first (or the session was deleted).
    func save(id: String, tenant: String, snapshot: RLMSession.Snapshot, expectedVersion: Int, at date: Date) async throws -> Int?
    /// Deletes the session; `false` when there was none.
    func delete(id: String, tenant: String) async throws -> Bool
    /// Adds a run's tokens and cost to the tenant's total.
    func addUsage(tenant: String, tokens: Int, costUSD: Double) async throws
    /// What the tenant has spent in all.
    func usage(tenant: String) async throws -> (tokens: Int, costUSD: Double)
    /// Closes the store.
    func close() async
}

/// An error of a store, with the operation that failed.
public struct SessionStoreError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// A ``SessionStore`` in one SQLite file (write-ahead log, so several server processes on one
/// machine can share it).
public final class SQLiteSessionStore: SessionStore {
    private let connection: SQLiteConnection
    /// The database file.
    public let path: String

    /// Opens (and if needed creates) the store at `path`.
    public static func open(path: String, logger: Logger = Logger(label: "rlm.store")) async throws -> SQLiteSessionStore {
        let connection = try await SQLiteFile.open(
            path: path, logger: logger,
            schema: [
                """
                CREATE TABLE IF NOT EXISTS sessions (
                    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
                    version INTEGER NOT NULL, turns INTEGER NOT NULL, snapshot BLOB)
                """,
                "CREATE INDEX IF NOT EXISTS sessions_tenant ON sessions (tenant, updated)",
                "CREATE TABLE IF NOT EXISTS tenant_usage (tenant TEXT PRIMARY KEY, tokens INTEGER NOT NULL, cost REAL NOT NULL)",
            ],
            opening: { SessionStoreError(message: "cannot open the session store \(path): \($0)") },
            preparing: { SessionStoreError(message: "cannot prepare the session store \(path) (is it an rlm store?): \($0)") })
        return SQLiteSessionStore(connection: connection, path: path)
    }

    private init(connection: SQLiteConnection, path: String) {
        self.connection = connection
        self.path = path
    }

    public func create(id: String, tenant: String, at date: Date) async throws {
        _ = try await run("INSERT INTO sessions (id, tenant, created, updated, version, turns, snapshot) VALUES (?, ?, ?, ?, 0, 0, NULL)",
                          [.text(id), .text(tenant), .float(date.timeIntervalSince1970), .float(date.timeIntervalSince1970)])
    }

    public func load(id: String, tenant: String) async throws -> StoredSession? {
        let rows = try await run("SELECT * FROM sessions WHERE id = ? AND tenant = ?", [.text(id), .text(tenant)])
        return try rows.first.map { try Self.session($0, withSnapshot: true) }
    }

    public func list(tenant: String) async throws -> [StoredSession] {
        let rows = try await run(
            "SELECT id, tenant, created, updated, version, turns FROM sessions WHERE tenant = ? ORDER BY updated DESC", [.text(tenant)])
        return try rows.map { try Self.session($0, withSnapshot: false) }
    }

    public func save(id: String, tenant: String, snapshot: RLMSession.Snapshot, expectedVersion: Int, at date: Date) async throws -> Int? {
        let data = try JSONEncoder().encode(snapshot)
        let rows = try await run(
            "UPDATE sessions SET snapshot = ?, version = version + 1, turns = ?, updated = ? WHERE id = ? AND tenant = ? AND version = ? RETURNING version",
            [.blob(ByteBuffer(bytes: data)), .integer(snapshot.turns.count), .float(date.timeIntervalSince1970),
             .text(id), .text(tenant), .integer(expectedVersion)])
        return rows.first?.column("version")?.integer
    }

    public func delete(id: String, tenant: String) async throws -> Bool {
        let rows = try await run("DELETE FROM sessions WHERE id = ? AND tenant = ? RETURNING id", [.text(id), .text(tenant)])
        return !rows.isEmpty
    }

    public func addUsage(tenant: String, tokens: Int, costUSD: Double) async throws {
        _ = try await run(
            "INSERT INTO tenant_usage (tenant, tokens, cost) VALUES (?, ?, ?) ON CONFLICT (tenant) DO UPDATE SET tokens = tokens + excluded.tokens, cost = cost + excluded.cost",
            [.text(tenant), .integer(tokens), .float(costUSD)])
    }

    public func usage(tenant: String) async throws -> (tokens: Int, costUSD: Double) {
        let rows = try await run("SELECT tokens, cost FROM tenant_usage WHERE tenant = ?", [.text(tenant)])
        guard let row = rows.first else { return (0, 0) }
        return (row.column("tokens")?.integer ?? 0, row.column("cost")?.double ?? 0)
    }

    public func close() async {
        try? await connection.close()
    }

    private func run(_ sql: String, _ binds: [SQLiteData]) async throws -> [SQLiteRow] {
        do {
            return try await connection.query(sql, binds)
        } catch {
            throw SessionStoreError(message: "the session store \(path) failed: \(error)")
        }
    }

    private static func session(_ row: SQLiteRow, withSnapshot: Bool) throws -> StoredSession {
        var snapshot: RLMSession.Snapshot?
        if withSnapshot, case .blob(let buffer)? = row.column("snapshot") {
            do {
                snapshot = try JSONDecoder().decode(RLMSession.Snapshot.self, from: Data(buffer.readableBytesView))
            } catch {
                throw SessionStoreError(message: "session \(row.column("id")?.string ?? "?") has a snapshot this version cannot read: \(error)")
            }
        }
        return StoredSession(
            id: row.column("id")?.string ?? "", tenant: row.column("tenant")?.string ?? "",
            created: Date(timeIntervalSince1970: row.column("created")?.double ?? 0),
            updated: Date(timeIntervalSince1970: row.column("updated")?.double ?? 0),
            version: row.column("version")?.integer ?? 0, turns: row.column("turns")?.integer ?? 0, snapshot: snapshot)
    }
}

/// Opens the store a location names: `postgres://…` (or `postgresql://…`) is a
/// ``PostgresSessionStore``, anything else the path of a ``SQLiteSessionStore`` file
/// (`:memory:` for one that lasts as long as the process).
public func openSessionStore(_ location: String, logger: Logger = Logger(label: "rlm.store")) async throws -> any SessionStore {
    if location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") {
        return try await PostgresSessionStore.open(url: location, logger: logger)
    }
    return try await SQLiteSessionStore.open(path: location, logger: logger)
}
