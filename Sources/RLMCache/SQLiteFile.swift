import Logging
import SQLiteNIO

/// How rlm opens the SQLite files it keeps (the reply cache here, `rlm serve`'s session store):
/// made if missing, a 10 s busy timeout (another process may hold the write lock while this one
/// starts) and a write-ahead log (so processes on one machine share the file), then the schema.
package enum SQLiteFile {
    /// Opens `path` and runs `schema`. A failure to open is passed to `opening`, one to prepare
    /// (pragmas or schema) to `preparing`, after the connection is closed; each returns the error
    /// to throw.
    package static func open(
        path: String, logger: Logger, schema: [String],
        opening: (any Error) -> any Error, preparing: (any Error) -> any Error
    ) async throws -> SQLiteConnection {
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        } catch {
            throw opening(error)
        }
        do {
            // busy_timeout first: another process may hold the write lock while this one starts.
            _ = try await connection.query("PRAGMA busy_timeout = 10000")
            _ = try await connection.query("PRAGMA journal_mode = WAL")
            for statement in schema { _ = try await connection.query(statement) }
        } catch {
            try? await connection.close()
            throw preparing(error)
        }
        return connection
    }
}
