import ArgumentParser
import Foundation
import RLMCommandCore
#if canImport(Glibc)
import Glibc
#endif
import RLM
import PythonRuntime
import RLMCache
import RLMProviders
import RLMTesting

/// `rlm run`: one query over one context file, against a real model server.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer a query over a context file with a model behind an HTTP API.",
        discussion: """
            Exit status: 0 when the model submitted an answer, 2 when a limit ended the run (the \
            best answer so far, if any, is still printed), 1 for bad input or a failed provider, \
            130 when interrupted.
            """)

    enum Provider: String, ExpressibleByArgument, CaseIterable {
        case openai, anthropic
    }

    @Option(help: "The API root, for example https://api.openai.com/v1 or http://127.0.0.1:8000/v1 (not needed with --replay).")
    var baseURL: String?

    @Option(help: "The model name the server knows.")
    var model: String

    @Option(help: "The file whose text becomes the REPL's `context` (UTF-8).")
    var contextFile: String

    @Option(help: "The question to answer.")
    var query: String

    @Option(help: "After the first answer, refine it for up to N steps (1-16): each step one turn of notes in `scratch`, then the answer again; stops when the answer comes back unchanged.")
    var refineSteps: Int?

    @Option(help: ArgumentHelp(
        "How the context file reaches the REPL: `text` reads it into a str, `mapped` maps it read-only (a str-like MappedText with byte positions, for files larger than memory), `auto` maps files of \(Self.mappedThresholdMiB) MiB or more.",
        valueName: "auto|text|mapped"))
    var contextMode: ContextMode = .auto

    @Option(help: "The API's shape.")
    var provider: Provider = .openai

    @Option(help: "The environment variable with the API key (default OPENAI_API_KEY or ANTHROPIC_API_KEY; not needed for a server on this machine).")
    var apiKeyEnv: String?

    @Option(help: "The model behind llm_query (default: the main model).")
    var subModel: String?

    @Option(help: "Sampling temperature for every model (default: the server's). 0 makes replies repeatable, which --cache needs.")
    var temperature: Double?

    @Option(help: "The main model's context window in tokens (default: what the server's model list reports, else the published window of a well-known model name, else unchecked).")
    var contextWindow: Int?

    @Option(help: "The sub-model's context window in tokens (default: found as for --context-window).")
    var subContextWindow: Int?

    @Option(help: "The most tokens one model reply may have (default: the server's; Anthropic: 8192). Small local models can repeat themselves until their window is full without it.")
    var maxOutputTokens: Int?

    @Option(help: "RLM levels: 1 makes rlm_query a plain call, 2 lets the root start child RLMs.")
    var maxDepth: Int = 1

    @Option(help: "Model turns per RLM.")
    var maxIterations: Int = 30

    @Option(help: "Seconds one code cell may run.")
    var execTimeout: Double = 60

    @Option(help: "Model calls in flight at once across the tree.")
    var maxConcurrency: Int = 16

    @Option(help: "The most model calls in the whole run.")
    var maxCalls: Int?

    @Option(help: "The most input plus output tokens in the whole run.")
    var maxTokens: Int?

    @Option(help: "The most US dollars; needs --price for the models.")
    var maxCost: Double?

    @Option(help: "Wall-clock seconds for the whole run.")
    var deadline: Double?

    @Option(help: "A model's price as NAME=INPUT:OUTPUT[:CACHED_INPUT[:CACHE_WRITE]] in USD per million tokens (repeatable); cache prices default to the input price.")
    var price: [String] = []

    @Option(help: "Write every event to this JSON Lines file (see `rlm view`).")
    var trajectory: String?

    @Option(help: "A session file: when it exists, the run continues that conversation (its REPL variables, contexts and history); afterwards the session is saved to it. Holds the contexts and answers: keep it private.")
    var session: String?

    @Flag(help: "Print one JSON object (answer, usage, iterations, elapsed_seconds, strategy) instead of the answer text.")
    var json = false

    @OptionGroup var answering: AnswerOptions

    @Flag(help: "No progress line on stderr.")
    var quiet = false

    @Option(help: "How model code is confined: in-process (sandboxed in this process), process (a confined worker process per REPL) or unrestricted (your authority; trusted code only).")
    var isolation: IsolationOption = .inProcess

    @Option(help: "A file or directory model code may read (repeatable; the standard library and its scratch directory always are).")
    var allowRead: [String] = []

    @Flag(help: "With --isolation process: refuse to run when the kernel lacks a confinement layer (instead of a warning).")
    var requireAllLayers = false

    @Option(help: "Keep sub-call replies in this SQLite file and answer repeated sub-calls from it (only deterministic ones: temperature 0, unless --cache-sampled).")
    var cache: String?

    @Flag(help: "With --cache: also answer the root model's turns from the cache.")
    var cacheRootTurns = false

    @Flag(help: "With --cache: also keep replies sampled at a temperature above 0 (or the server's default).")
    var cacheSampled = false

    @Option(help: "Record every model call (requests, replies, usage, windows) into this file, to replay the run offline with --replay.")
    var record: String?

    @Option(help: "Answer every model call from a file written by --record: no server is contacted, and a request the recording does not hold fails the run.")
    var replay: String?

    /// Files this large or larger are mapped under `--context-mode auto`: reading one into a str
    /// takes its size in memory, and more while the model's code slices it.
    static let mappedThresholdMiB = 256

    enum ContextMode: String, ExpressibleByArgument, CaseIterable {
        case auto
        case text
        case mapped

        func context(for url: URL) throws -> RLMContext {
            switch self {
            case .text: return .file(url)
            case .mapped: return .mappedFile(url)
            case .auto:
                let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue ?? 0
                return size >= Run.mappedThresholdMiB << 20 ? .mappedFile(url) : .file(url)
            }
        }
    }

    enum IsolationOption: String, ExpressibleByArgument, CaseIterable {
        case inProcess = "in-process"
        case process
        case unrestricted
    }

    mutating func validate() throws {
        if query.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw ValidationError("the query is empty: pass --query TEXT") }
        if maxDepth < 1 { throw ValidationError("--max-depth must be at least 1") }
        if let refineSteps, !(1...16).contains(refineSteps) { throw ValidationError("--refine-steps must be from 1 to 16") }
        if maxIterations < 1 { throw ValidationError("--max-iterations must be at least 1") }
        if maxConcurrency < 1 { throw ValidationError("--max-concurrency must be at least 1") }
        if execTimeout <= 0 { throw ValidationError("--exec-timeout must be positive") }
        if let deadline, deadline <= 0 { throw ValidationError("--deadline must be positive") }
        if let maxOutputTokens, maxOutputTokens < 1 { throw ValidationError("--max-output-tokens must be at least 1") }
        if let contextWindow, contextWindow < 256 { throw ValidationError("--context-window must be at least 256 tokens") }
        if let subContextWindow, subContextWindow < 256 { throw ValidationError("--sub-context-window must be at least 256 tokens") }
        if subContextWindow != nil && subModel == nil { throw ValidationError("--sub-context-window needs --sub-model (without it, sub-calls use the main model and --context-window)") }
        if maxCost != nil && price.isEmpty { throw ValidationError("--max-cost needs prices: add --price \(model)=INPUT:OUTPUT (USD per million tokens)") }
        _ = try Self.parsePrices(price)
        if let temperature, !(0...2).contains(temperature) { throw ValidationError("--temperature must be from 0 to 2") }
        if baseURL == nil && replay == nil { throw ValidationError("--base-url is needed (the API root of the models), unless --replay answers from a recording") }
        if record != nil && replay != nil { throw ValidationError("--record and --replay cannot be used together") }
        if cache == nil && (cacheRootTurns || cacheSampled) { throw ValidationError("--cache-root-turns and --cache-sampled need --cache PATH") }
    }

    static func parsePrices(_ specs: [String]) throws -> [String: ModelPrice] {
        var prices: [String: ModelPrice] = [:]
        for spec in specs {
            let parts = spec.split(separator: "=", maxSplits: 1)
            let numbers = parts.count == 2 ? parts[1].split(separator: ":").compactMap { Double($0) } : []
            let fields = parts.count == 2 ? parts[1].split(separator: ":").count : 0
            guard parts.count == 2, (2...4).contains(numbers.count), numbers.count == fields, numbers.allSatisfy({ $0 >= 0 }) else {
                throw ValidationError("--price '\(spec)' should look like gpt-4o-mini=0.15:0.60 (or claude-x=3:15:0.30:3.75 with cached-input and cache-write prices)")
            }
            prices[String(parts[0])] = ModelPrice(
                inputPerMillion: numbers[0], outputPerMillion: numbers[1],
                cachedInputPerMillion: numbers.count > 2 ? numbers[2] : nil, cacheWritePerMillion: numbers.count > 3 ? numbers[3] : nil)
        }
        return prices
    }

    func run() async throws {
        do {
            try await execute()
        } catch let code as ExitCode {
            throw code
        } catch let error as SecuredOutput.OutputError {
            printError("rlm: \(error.message)")
            throw ExitStatus.failure
        } catch let error as ProviderError {
            printError("rlm: \(error.message)")
            throw ExitStatus.failure
        } catch let error as RLMError {
            printError("rlm: \(error.message)")
            throw ExitStatus.failure
        } catch is CancellationError {
            printError("rlm: interrupted")
            throw ExitStatus.interrupted
        } catch {
            printError("rlm: \(error)")
            throw ExitStatus.failure
        }
    }

    private func makeModel(_ name: String, window: Int?) async throws -> any LanguageModel {
        try await Self.makeModel(
            provider: provider, baseURL: baseURL ?? "", name: name, apiKeyEnv: apiKeyEnv, maxOutputTokens: maxOutputTokens, window: window,
            temperature: temperature, structuredOutput: answering.structuredOutput)
    }

    /// The root and sub-models: replayed from `--replay`, else over HTTP, recorded under `--record`.
    private func makeModels(recording cassette: Cassette?) async throws -> (root: any LanguageModel, sub: (any LanguageModel)?) {
        var root: any LanguageModel
        var sub: (any LanguageModel)?
        if let replay {
            let tape = try Cassette.load(from: URL(fileURLWithPath: replay))
            root = try ReplayModel(name: model, cassette: tape)
            sub = try subModel.map { try ReplayModel(name: $0, cassette: tape) }
        } else {
            root = try await makeModel(model, window: contextWindow)
            if let subModel { sub = try await makeModel(subModel, window: subContextWindow) }
        }
        if let cassette {
            root = RecordingModel(root, into: cassette)
            sub = sub.map { RecordingModel($0, into: cassette) }
        }
        return (root, sub)
    }

    /// A model with its context window: `window` tokens when given; else, for an
    /// OpenAI-compatible server, the window its model list reports (asked once, briefly); else
    /// the published window of a well-known name. Shared with `rlm bench`.
    static func makeModel(
        provider: Provider, baseURL: String, name: String, apiKeyEnv: String?, maxOutputTokens: Int?, window: Int?, temperature: Double? = nil,
        structuredOutput: StructuredOutput? = nil
    ) async throws -> any LanguageModel {
        switch provider {
        case .openai:
            var configuration = OpenAICompatibleModel.Configuration(
                baseURL: baseURL, model: name, apiKeyVariable: apiKeyEnv ?? "OPENAI_API_KEY", temperature: temperature, maxTokens: maxOutputTokens)
            if let structuredOutput { configuration.structuredOutput = structuredOutput }
            configuration.contextWindow = window.map { ContextWindow(tokens: $0) }
            let model = try OpenAICompatibleModel(configuration: configuration)
            guard window == nil, let reported = try? await model.discoverContextWindow(timeout: .seconds(3)) else { return model }
            configuration.contextWindow = reported
            return try OpenAICompatibleModel(configuration: configuration)
        case .anthropic:
            var configuration = AnthropicModel.Configuration(baseURL: baseURL, model: name, apiKeyVariable: apiKeyEnv ?? "ANTHROPIC_API_KEY")
            configuration.temperature = temperature
            if let maxOutputTokens { configuration.maxTokens = maxOutputTokens }
            configuration.contextWindow = window.map { ContextWindow(tokens: $0, reservedForReply: min(configuration.maxTokens, $0 / 2)) }
            return try AnthropicModel(configuration: configuration)
        }
    }

    private func execute() async throws {
        let output = try SecuredOutput.take()
        let url = try ContextFile.check(contextFile)
        let context = try contextMode.context(for: url)
        let prices = try Self.parsePrices(price)
        let cassette = record.map { _ in Cassette() }
        let (root, sub) = try await makeModels(recording: cassette)
        var configuration = RLMConfiguration(
            rootModel: root, subModel: sub, maxDepth: maxDepth, maxIterations: maxIterations,
            execTimeout: .milliseconds(Int64(execTimeout * 1000)), maxConcurrentSubcalls: maxConcurrency,
            budget: Budget(
                maxModelCalls: maxCalls, maxTokens: maxTokens, maxCostUSD: maxCost,
                deadline: deadline.map { .milliseconds(Int64($0 * 1000)) }, prices: prices))
        configuration.isolation = Isolation(
            level: isolation == .unrestricted ? .unrestricted : isolation == .process ? .process : .inProcess,
            readablePaths: allowRead.map { URL(fileURLWithPath: $0).standardizedFileURL.path })
        configuration.isolation.requiresAllLayers = requireAllLayers
        if let refineSteps { configuration.refinement = Refinement(maxSteps: refineSteps) }
        answering.apply(to: &configuration)
        if isolation == .process { try await Self.checkWorker(requireAllLayers: requireAllLayers) }
        var cacheStorage: SQLiteModelCacheStorage?
        if let cache {
            do {
                cacheStorage = try await SQLiteModelCacheStorage.open(path: cache)
            } catch let error as ModelCacheError {
                throw ValidationError("--cache: \(error.message)")
            }
        }
        if let cacheStorage {
            configuration.cache = ModelCache(storage: cacheStorage, includesRootTurns: cacheRootTurns, cachesSampledReplies: cacheSampled)
        }
        let writer = try trajectory.map { try TrajectoryWriter(url: URL(fileURLWithPath: $0)) }
        defer { writer?.close() }
        let progress = ProgressDisplay(enabled: !quiet, prices: prices)
        let rootName = root.modelName
        let rlm = RLM(configuration: configuration)
        let started = ContinuousClock.now
        let conversation = try session.map { try SessionFile(path: $0, rlm: rlm) }
        let outcome = await Interruptible.run {
            if let conversation {
                return try await conversation.session.complete(query: query, context: context, trajectory: writer) {
                    progress.observe($0, rootModel: rootName)
                }
            }
            return try await rlm.complete(query: query, context: context, trajectory: writer) { progress.observe($0, rootModel: rootName) }
        }
        progress.finish()
        await cacheStorage?.close()
        // Whatever the outcome: a run that failed or hit a limit is worth replaying too.
        if let cassette, let record {
            do {
                try cassette.save(to: URL(fileURLWithPath: record))
            } catch {
                printError("rlm: cannot write the recording \(record): \(error.localizedDescription)")
            }
        }
        switch outcome {
        case .success(let result):
            try Output.printResult(answer: result.answer, usage: result.usage, iterations: result.iterations,
                                   elapsed: result.elapsed, json: json, limit: result.answeredAfterLimit, strategy: result.strategy, to: output)
            if let limit = result.answeredAfterLimit {
                printError("rlm: the \(limit) was reached; the model gave this final answer when asked")
            }
            // After the answer is out, so a session that cannot be saved loses no answer.
            try await conversation?.save()
        case .failure(let error as RLMError) where error.code == .limitReached:
            let limit = error.limit.map { "\($0)" } ?? "a limit"
            printError("rlm: stopped by the \(limit)\(Self.flag(for: error.limit))" + (error.partialAnswer == nil ? "; the model had no answer yet" : "; the best answer so far follows on stdout"))
            if let partial = error.partialAnswer {
                try Output.printResult(answer: partial, usage: error.usage ?? UsageSummary(), iterations: nil,
                                       elapsed: .now - started, json: json, limit: error.limit, complete: false, to: output)
            } else if json {
                try Output.printResult(answer: nil, usage: error.usage ?? UsageSummary(), iterations: nil,
                                       elapsed: .now - started, json: true, limit: error.limit, complete: false, to: output)
            }
            // The REPL's work is kept after a limit too.
            try await conversation?.save()
            throw ExitStatus.limitReached
        case .failure(let error):
            throw error
        }
    }

    /// Starts one worker before the run: a missing `rlm-worker` or a kernel without a confinement
    /// layer is said once, up front, instead of in the middle of a run.
    static func checkWorker(requireAllLayers: Bool) async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let worker: PythonWorker
        do {
            worker = try await PythonWorker.start(configuration: .init(scratch: scratch.path, requireAllLayers: requireAllLayers))
        } catch let error as PythonError {
            throw ValidationError("--isolation process cannot start its worker: \(error.message)")
        }
        await worker.close()
        if !worker.missingLayers.isEmpty {
            printError("rlm: warning: this kernel lacks \(worker.missingLayers.joined(separator: ", ")); workers run with the other layers (--require-all-layers refuses instead)")
        }
    }

    static func flag(for limit: Limit?) -> String {
        switch limit {
        case .iterations?: " (--max-iterations)"
        case .modelCalls?: " (--max-calls)"
        case .tokens?: " (--max-tokens)"
        case .cost?: " (--max-cost)"
        case .deadline?: " (--deadline)"
        case .unstoppableCode?: " (a cell ran past --exec-timeout in C code that cannot be interrupted)"
        default: ""
        }
    }
}

/// `--session FILE`: a conversation that continues across `rlm run` invocations.
struct SessionFile {
    let url: URL
    let session: RLMSession

    /// Opens the session saved at `path`, or a new one when there is no file yet.
    init(path: String, rlm: RLM) throws {
        url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            session = rlm.session()
            return
        }
        if isDirectory.boolValue { throw ValidationError("--session \(path) is a directory: give a file path") }
        let snapshot: RLMSession.Snapshot
        do {
            snapshot = try JSONDecoder().decode(RLMSession.Snapshot.self, from: Data(contentsOf: url))
        } catch {
            throw ValidationError("--session \(path) is not a session file that rlm wrote (\(error.localizedDescription)); give a new path to start a session")
        }
        session = rlm.session(restoring: snapshot)
    }

    /// Writes the session (mode 0600, replacing the file in one step) and says what was not saved.
    func save() async throws {
        let snapshot = try await session.snapshot()
        let data = try JSONEncoder().encode(snapshot)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw ValidationError("cannot write the session file next to \(url.path)")
        }
        // rename(2) replaces the old file in one step, or creates it.
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw ValidationError("cannot save the session to \(url.path): \(reason)")
        }
        for skipped in snapshot.skipped {
            printError("rlm: note: `\(skipped.name)` is not kept in the session (\(skipped.reason))")
        }
        await session.close()
    }
}
