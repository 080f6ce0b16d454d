import Foundation
import Logging
import NIOCore
import RLM
import SQLiteNIO

/// A ``ModelCacheStorage`` in one SQLite file (write-ahead log, so several processes on one
/// machine share it), kept across runs: the same run twice makes no sub-call the second time.
///
/// Rows are found by the key's digest and taken only when the whole stored request equals the
/// key's, so a digest collision is a miss, never another request's reply.
///
/// ```swift
/// let storage = try await SQLiteModelCacheStorage.open(path: "replies.sqlite")
/// configuration.cache = ModelCache(storage: storage)
/// // …
/// await storage.close()
/// ```
public final class SQLiteModelCacheStorage: ModelCacheStorage {
    private let connection: SQLiteConnection
    /// The database file.
    public let path: String

    /// Opens (and if needed creates) the cache at `path`.
    public static func open(path: String, logger: Logger = Logger(label: "rlm.cache")) async throws -> SQLiteModelCacheStorage {
        let connection = try await SQLiteFile.open(
            path: path, logger: logger,
            schema: ["""
                CREATE TABLE IF NOT EXISTS replies (
                    digest TEXT PRIMARY KEY, model TEXT NOT NULL, request TEXT NOT NULL, reply TEXT NOT NULL,
                    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL,
                    created REAL NOT NULL)
                """],
            opening: { ModelCacheError(message: "cannot open the cache \(path): \($0)") },
            preparing: { ModelCacheError(message: "cannot prepare the cache \(path) (is it a file rlm wrote?): \($0)") })
        return SQLiteModelCacheStorage(connection: connection, path: path)
    }

    private init(connection: SQLiteConnection, path: String) {
        self.connection = connection
        self.path = path
    }

    public func reply(for key: ModelCallKey) async throws -> ModelResponse? {
        let rows = try await run(
            "SELECT request, reply, input_tokens, output_tokens, cached_input_tokens FROM replies WHERE digest = ?", [.text(key.digest)])
        guard let row = rows.first, row.column("request")?.string == key.canonical, let text = row.column("reply")?.string else { return nil }
        return ModelResponse(text: text, usage: TokenUsage(
            inputTokens: row.column("input_tokens")?.integer ?? 0, outputTokens: row.column("output_tokens")?.integer ?? 0,
            cachedInputTokens: row.column("cached_input_tokens")?.integer ?? 0))
    }

    public func store(_ response: ModelResponse, for key: ModelCallKey) async throws {
        _ = try await run(
            """
            INSERT OR REPLACE INTO replies (digest, model, request, reply, input_tokens, output_tokens, cached_input_tokens, created)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [.text(key.digest), .text(key.model), .text(key.canonical), .text(response.text), .integer(response.usage.inputTokens),
             .integer(response.usage.outputTokens), .integer(response.usage.cachedInputTokens), .float(Date().timeIntervalSince1970)])
    }

    /// How many replies the file holds.
    public func count() async throws -> Int {
        try await run("SELECT COUNT(*) AS n FROM replies", []).first?.column("n")?.integer ?? 0
    }

    /// Closes the file.
    public func close() async {
        try? await connection.close()
    }

    private func run(_ sql: String, _ binds: [SQLiteData]) async throws -> [SQLiteRow] {
        do {
            return try await connection.query(sql, binds)
        } catch {
            throw ModelCacheError(message: "the cache \(path) failed: \(error)")
        }
    }
}

/// A cache file that cannot be opened, prepared or used; the message names the file and why.
public struct ModelCacheError: Error, CustomStringConvertible {
    /// What went wrong.
    public var message: String
    public var description: String { message }

    /// Creates an error with `message`.
    public init(message: String) {
        self.message = message
    }
}
