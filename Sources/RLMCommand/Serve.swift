import ArgumentParser
import Foundation
import RLMCommandCore
import Logging
import RLM
import RLMServer

/// `rlm serve`: RLMs behind an OpenAI-compatible HTTP API, with sessions, tenants and a live page.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve RLMs over an OpenAI-compatible HTTP API, with sessions, tenants and a live page at /.",
        discussion: """
            POST /v1/chat/completions answers with an RLM over the configured models (the model name \
            is --model-name); sessions live under /v1/sessions and are kept in --store, so they \
            survive a restart. SIGTERM or SIGINT stops accepting, lets runs finish for up to \
            --shutdown-grace seconds, cancels the rest and exits 0. docs/serve.md has the details.
            """)

    @OptionGroup var models: ModelOptions
    @OptionGroup var runs: RunOptions

    @Option(help: "The address to listen on. Anything but loopback needs --tenants.")
    var host: String = "127.0.0.1"

    @Option(help: "The port (0: any free port; the one taken is printed on stderr).")
    var port: Int = 8080

    @Option(help: "The name clients give as \"model\".")
    var modelName: String = "rlm"

    @Option(help: "The JSON file of tenants and their bearer tokens (see docs/serve.md). Without it, every request is accepted.")
    var tenants: String?

    @Option(help: "Where sessions and what tenants spent are kept: an SQLite file (made if missing; servers on this machine may share it) or postgres://USER:PASSWORD@HOST:PORT/DB (servers anywhere may share it).")
    var store: String = "rlm-serve.sqlite"

    @Option(help: "Keep sub-call replies and answer repeated sub-calls from them, per tenant: an SQLite file or postgres://USER:PASSWORD@HOST:PORT/DB (servers anywhere may share it). Only deterministic replies (--temperature 0) unless --cache-sampled.")
    var cache: String?

    @Flag(help: "With --cache: also keep replies sampled at a temperature above 0 (or the server's default).")
    var cacheSampled = false

    @Option(help: "Seconds runs in progress may take to finish after SIGTERM before they are cancelled.")
    var shutdownGrace: Double = 30

    @Option(name: .customLong("max-body-mib"), help: "The largest request body in MiB.")
    var maxBodyMiB: Int = 64

    @Option(help: "Without --tenants: runs in progress at once; more get 429 (a tenant's own max_concurrent_runs applies otherwise).")
    var maxRuns: Int = 64

    @Option(help: "Model calls in flight at once across all runs and tenants; tenants take turns when it is full.")
    var maxCallsInFlight: Int = 64

    @Option(help: "Sessions whose REPLs stay in memory; beyond it the least recently used are closed (their next turn restores them from the store).")
    var maxLiveSessions: Int = 256

    mutating func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be from 0 to 65535") }
        if shutdownGrace < 0 { throw ValidationError("--shutdown-grace must not be negative") }
        if maxBodyMiB < 1 { throw ValidationError("--max-body-mib must be at least 1") }
        if maxRuns < 1 { throw ValidationError("--max-runs must be at least 1") }
        if maxCallsInFlight < 1 { throw ValidationError("--max-calls-in-flight must be at least 1") }
        if maxLiveSessions < 1 { throw ValidationError("--max-live-sessions must be at least 1") }
        if cacheSampled && cache == nil { throw ValidationError("--cache-sampled needs --cache LOCATION") }
        let loopback = ["127.0.0.1", "localhost", "::1"].contains(host)
        if !loopback && tenants == nil {
            throw ValidationError("--host \(host) without --tenants would let anyone who reaches it spend your model budget: add --tenants FILE")
        }
    }

    func run() async throws {
        do {
            try await serve()
        } catch let error as ValidationError {
            throw error
        } catch let error as SessionStoreError {
            printError("rlm: \(error.message)")
            throw ExitStatus.failure
        } catch {
            printError("rlm: \(error)")
            throw ExitStatus.failure
        }
    }

    private func serve() async throws {
        let tenantList = try tenants.map { try TenantsFile.load($0) } ?? []
        var rlm = try await runs.configuration(models: models, defaultIsolation: tenantList.isEmpty ? .inProcess : .process)
        rlm.callLimiter = ModelCallLimiter(maxConcurrentCalls: maxCallsInFlight)
        if let cache { rlm.cache = ModelCache(storage: try await openModelCacheStorage(cache), cachesSampledReplies: cacheSampled) }
        let store = try await openSessionStore(store)
        var logger = Logger(label: "rlm.serve")
        logger.logLevel = .notice
        var configuration = RLMServerConfiguration(
            rlm: rlm, modelName: modelName, tenants: tenantList, allowedRoots: runs.allowedRoots,
            maxBodyBytes: maxBodyMiB << 20, maxLiveSessions: maxLiveSessions)
        configuration.anonymousTenant.maxConcurrentRuns = maxRuns
        let service = RLMService(configuration: configuration, store: store, logger: logger)
        let server = RLMServer(service: service, logger: logger)
        let host = self.host
        let level = rlm.isolation.level
        try await server.run(host: host, port: port, shutdownGrace: .milliseconds(Int64(shutdownGrace * 1000))) { port in
            printError("rlm serve: listening on http://\(host):\(port) (model \"\(modelName)\", \(tenantList.isEmpty ? "no authentication" : "\(tenantList.count) tenant(s)"), isolation \(level))")
        }
        printError("rlm serve: stopped")
    }
}

/// `rlm mcp`: RLMs as tools of a Model Context Protocol server on stdin and stdout.
struct MCP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve RLMs as MCP tools over stdio (rlm_query and session tools), for coding agents.",
        discussion: """
            stdout carries only the protocol; logs go to stderr. Sessions are kept in --store \
            (in memory unless given).
            """)

    @OptionGroup var models: ModelOptions
    @OptionGroup var runs: RunOptions

    @Option(help: "Where sessions are kept: an SQLite file or a postgres:// URL (default: in memory, gone when the server exits).")
    var store: String?

    func run() async throws {
        do {
            let rlm = try await runs.configuration(models: models, defaultIsolation: .inProcess)
            let store = try await openSessionStore(store ?? ":memory:")
            var logger = Logger(label: "rlm.mcp") { StreamLogHandler.standardError(label: $0) }
            logger.logLevel = .warning
            let service = RLMService(
                configuration: RLMServerConfiguration(rlm: rlm, allowedRoots: runs.allowedRoots), store: store, logger: logger)
            try await RLMMCPServer(service: service).runStdio(logger: logger)
        } catch let error as ValidationError {
            throw error
        } catch {
            printError("rlm: \(error)")
            throw ExitStatus.failure
        }
    }
}
