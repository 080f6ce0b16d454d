import Foundation
import Logging
import NIOCore
import PostgresNIO
import RLM
import RLMCache

/// A ``ModelCacheStorage`` in PostgreSQL, shared by servers on several machines: a reply one
/// server paid for answers the same call on any of them. The table (`rlm_replies`) is made on
/// first use. As in the SQLite storage, a row is found by the key's digest and taken only when the
/// whole stored request is equal.
public final class PostgresModelCacheStorage: ModelCacheStorage {
    private let client: PostgresClient
    private let running: Task<Void, Never>
    private let logger: Logger
    /// Where the cache is, without its password.
    public let location: String

    /// Connects to `url` (as ``PostgresSessionStore/open(url:environment:logger:)``: the password
    /// from the URL or `$PGPASSWORD`) and makes the table if needed.
    public static func open(
        url: String, environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger = Logger(label: "rlm.cache")
    ) async throws -> PostgresModelCacheStorage {
        let (configuration, location) = try PostgresSessionStore.clientConfiguration(url: url, environment: environment)
        let storage = PostgresModelCacheStorage(client: PostgresClient(configuration: configuration, backgroundLogger: logger), location: location, logger: logger)
        do {
            try await storage.client.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(72312)", logger: logger)
                try await connection.query("""
                    CREATE TABLE IF NOT EXISTS rlm_replies (
                        digest TEXT PRIMARY KEY, model TEXT NOT NULL, request TEXT NOT NULL, reply TEXT NOT NULL,
                        input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, cached_input_tokens BIGINT NOT NULL,
                        created DOUBLE PRECISION NOT NULL)
                    """, logger: logger)
            }
        } catch {
            await storage.close()
            throw ModelCacheError(message: "cannot prepare the cache \(location): \(String(reflecting: error))")
        }
        return storage
    }

    private init(client: PostgresClient, location: String, logger: Logger) {
        self.client = client
        self.location = location
        self.logger = logger
        running = Task { await client.run() }
    }

    public func reply(for key: ModelCallKey) async throws -> ModelResponse? {
        let digest = key.digest
        do {
            let rows = try await client.query(
                "SELECT request, reply, input_tokens, output_tokens, cached_input_tokens FROM rlm_replies WHERE digest = \(digest)", logger: logger)
            for try await (request, reply, input, output, cached) in rows.decode((String, String, Int, Int, Int).self) where request == key.canonical {
                return ModelResponse(text: reply, usage: TokenUsage(inputTokens: input, outputTokens: output, cachedInputTokens: cached))
            }
            return nil
        } catch {
            throw ModelCacheError(message: "the cache \(location) failed: \(String(reflecting: error))")
        }
    }

    public func store(_ response: ModelResponse, for key: ModelCallKey) async throws {
        let (digest, model, request, text) = (key.digest, key.model, key.canonical, response.text)
        let (input, output, cached) = (response.usage.inputTokens, response.usage.outputTokens, response.usage.cachedInputTokens)
        let now = Date().timeIntervalSince1970
        do {
            try await client.query("""
                INSERT INTO rlm_replies (digest, model, request, reply, input_tokens, output_tokens, cached_input_tokens, created)
                VALUES (\(digest), \(model), \(request), \(text), \(input), \(output), \(cached), \(now))
                ON CONFLICT (digest) DO UPDATE SET model = excluded.model, request = excluded.request, reply = excluded.reply,
                    input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
                    cached_input_tokens = excluded.cached_input_tokens, created = excluded.created
                """, logger: logger)
        } catch {
            throw ModelCacheError(message: "the cache \(location) failed: \(String(reflecting: error))")
        }
    }

    /// Closes the connections.
    public func close() async {
        running.cancel()
        _ = await running.value
    }
}

/// Opens the reply cache a location names: `postgres://…` is a ``PostgresModelCacheStorage``,
/// anything else the path of an `RLMCache.SQLiteModelCacheStorage` file.
public func openModelCacheStorage(_ location: String, logger: Logger = Logger(label: "rlm.cache")) async throws -> any ModelCacheStorage {
    if location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") {
        return try await PostgresModelCacheStorage.open(url: location, logger: logger)
    }
    return try await SQLiteModelCacheStorage.open(path: location, logger: logger)
}
