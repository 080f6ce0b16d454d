import ArgumentParser
import Foundation
import RLMCommandCore
import RLM
import RLMProviders
import RLMServer

/// The models behind `rlm serve` and `rlm mcp`.
struct ModelOptions: ParsableArguments {
    @Option(help: "The API root of the models, for example https://api.openai.com/v1 or http://127.0.0.1:8000/v1.")
    var baseURL: String

    @Option(help: "The root model's name on that server.")
    var model: String

    @Option(help: "The model behind llm_query (default: the root model).")
    var subModel: String?

    @Option(help: "The API's shape.")
    var provider: Run.Provider = .openai

    @Option(help: "The environment variable with the API key (default OPENAI_API_KEY or ANTHROPIC_API_KEY; not needed for a server on this machine).")
    var apiKeyEnv: String?

    @Option(help: "Sampling temperature for every model (default: the server's). 0 makes replies repeatable, which --cache needs.")
    var temperature: Double?

    @Option(help: "The root model's context window in tokens (default: what the server reports, else a well-known model's).")
    var contextWindow: Int?

    @Option(help: "The most tokens one model reply may have.")
    var maxOutputTokens: Int?

    @Option(help: "A model's price as NAME=INPUT:OUTPUT[:CACHED_INPUT[:CACHE_WRITE]] in USD per million tokens (repeatable).")
    var price: [String] = []

    func validate() throws {
        if let contextWindow, contextWindow < 256 { throw ValidationError("--context-window must be at least 256 tokens") }
        if let maxOutputTokens, maxOutputTokens < 1 { throw ValidationError("--max-output-tokens must be at least 1") }
        if let temperature, !(0...2).contains(temperature) { throw ValidationError("--temperature must be from 0 to 2") }
        _ = try Run.parsePrices(price)
    }

    func makeModels(structuredOutput: StructuredOutput?) async throws -> (root: any LanguageModel, sub: (any LanguageModel)?) {
        let root = try await Run.makeModel(
            provider: provider, baseURL: baseURL, name: model, apiKeyEnv: apiKeyEnv, maxOutputTokens: maxOutputTokens, window: contextWindow,
            temperature: temperature, structuredOutput: structuredOutput)
        var sub: (any LanguageModel)?
        if let subModel {
            sub = try await Run.makeModel(
                provider: provider, baseURL: baseURL, name: subModel, apiKeyEnv: apiKeyEnv, maxOutputTokens: maxOutputTokens, window: nil,
                temperature: temperature, structuredOutput: structuredOutput)
        }
        return (root, sub)
    }
}

/// How each run of `rlm serve` and `rlm mcp` works, and what it may spend.
struct RunOptions: ParsableArguments {
    @Option(help: "RLM levels: 1 makes rlm_query a plain call, 2 lets the root start child RLMs.")
    var maxDepth: Int = 1

    @Option(help: "Model turns per RLM.")
    var maxIterations: Int = 30

    @Option(help: "Seconds one code cell may run.")
    var execTimeout: Double = 60

    @Option(help: "Model calls in flight at once in one run.")
    var maxConcurrency: Int = 16

    @Option(help: "The most model calls in one run (a tenant's own budget replaces it).")
    var maxCalls: Int?

    @Option(help: "The most tokens in one run.")
    var maxTokens: Int?

    @Option(help: "The most US dollars in one run; needs --price.")
    var maxCost: Double?

    @Option(help: "Wall-clock seconds for one run.")
    var deadline: Double = 600

    @Option(help: "How model code is confined: process (a confined worker process per REPL), in-process (sandboxed in this process) or unrestricted (trusted code only). Default: process for `rlm serve` with --tenants, in-process otherwise.")
    var isolation: Run.IsolationOption?

    @Option(help: "A directory whose files requests may name as contexts (repeatable); model code may read them too.")
    var allowFiles: [String] = []

    @Option(help: "With --isolation process: confined workers kept started and idle, so that a new REPL takes one at once instead of starting a process.")
    var warmWorkers: Int = 2

    @OptionGroup var answering: AnswerOptions

    func validate() throws {
        if maxDepth < 1 { throw ValidationError("--max-depth must be at least 1") }
        if maxIterations < 1 { throw ValidationError("--max-iterations must be at least 1") }
        if maxConcurrency < 1 { throw ValidationError("--max-concurrency must be at least 1") }
        if execTimeout <= 0 { throw ValidationError("--exec-timeout must be positive") }
        if deadline <= 0 { throw ValidationError("--deadline must be positive") }
        if !(0...64).contains(warmWorkers) { throw ValidationError("--warm-workers must be from 0 to 64") }
        for directory in allowFiles {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--allow-files \(directory) is not a directory")
            }
        }
    }

    var allowedRoots: [String] { allowFiles.map { URL(fileURLWithPath: $0).resolvingSymlinksInPath().standardizedFileURL.path } }

    func configuration(models: ModelOptions, defaultIsolation: Run.IsolationOption) async throws -> RLMConfiguration {
        if maxCost != nil && models.price.isEmpty { throw ValidationError("--max-cost needs prices: add --price \(models.model)=INPUT:OUTPUT") }
        let (root, sub) = try await models.makeModels(structuredOutput: answering.structuredOutput)
        var configuration = RLMConfiguration(
            rootModel: root, subModel: sub, maxDepth: maxDepth, maxIterations: maxIterations,
            execTimeout: .milliseconds(Int64(execTimeout * 1000)), maxConcurrentSubcalls: maxConcurrency,
            budget: Budget(
                maxModelCalls: maxCalls, maxTokens: maxTokens, maxCostUSD: maxCost,
                deadline: .milliseconds(Int64(deadline * 1000)), prices: try Run.parsePrices(models.price)))
        let level = isolation ?? defaultIsolation
        configuration.isolation = Isolation(
            level: level == .unrestricted ? .unrestricted : level == .process ? .process : .inProcess, readablePaths: allowedRoots)
        if level == .process {
            try await Run.checkWorker(requireAllLayers: false)
            configuration.isolation.warmWorkers = warmWorkers
        }
        answering.apply(to: &configuration)
        configuration.startWarmWorkers()
        return configuration
    }
}

/// `--tenants FILE`: who may use `rlm serve`.
///
/// ```json
/// {"tenants": [{"name": "alice", "token_env": "ALICE_TOKEN", "max_concurrent_runs": 4,
///               "max_total_tokens": 2000000, "max_total_cost_usd": 10,
///               "budget": {"max_calls": 60, "max_tokens": 400000, "max_cost_usd": 1, "deadline_seconds": 300}}]}
/// ```
/// `token` may stand in the file instead of `token_env`; keep such a file private.
enum TenantsFile {
    struct File: Decodable {
        var tenants: [Entry]
    }

    struct Entry: Decodable {
        var name: String
        var token: String?
        var tokenEnv: String?
        var maxConcurrentRuns: Int?
        var maxTotalTokens: Int?
        var maxTotalCostUSD: Double?
        var budget: BudgetEntry?
        enum CodingKeys: String, CodingKey {
            case name, token, tokenEnv = "token_env", maxConcurrentRuns = "max_concurrent_runs"
            case maxTotalTokens = "max_total_tokens", maxTotalCostUSD = "max_total_cost_usd", budget
        }
    }

    struct BudgetEntry: Decodable {
        var maxCalls: Int?
        var maxTokens: Int?
        var maxCostUSD: Double?
        var deadlineSeconds: Double?
        enum CodingKeys: String, CodingKey {
            case maxCalls = "max_calls", maxTokens = "max_tokens", maxCostUSD = "max_cost_usd", deadlineSeconds = "deadline_seconds"
        }
    }

    /// Tokens shorter than this are refused: they can be guessed.
    static let shortestToken = 16

    static func load(_ path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [Tenant] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("--tenants \(path) cannot be read") }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw ValidationError("--tenants \(path) is not a tenants file ({\"tenants\": [{\"name\": …, \"token_env\": …}]}): \(error.localizedDescription)")
        }
        guard !file.tenants.isEmpty else { throw ValidationError("--tenants \(path) lists no tenants") }
        var tenants: [Tenant] = []
        for (index, entry) in file.tenants.enumerated() {
            let label = "tenant \(index + 1) (\(entry.name))"
            guard !entry.name.isEmpty else { throw ValidationError("--tenants \(path): tenant \(index + 1) has no name") }
            let token: String
            switch (entry.token, entry.tokenEnv) {
            case (let value?, nil): token = value
            case (nil, let variable?):
                guard let value = environment[variable], !value.isEmpty else {
                    throw ValidationError("--tenants \(path): \(label) takes its token from $\(variable), which is not set")
                }
                token = value
            default: throw ValidationError("--tenants \(path): \(label) needs exactly one of `token` and `token_env`")
            }
            guard token.count >= shortestToken else {
                throw ValidationError("--tenants \(path): \(label) has a token shorter than \(shortestToken) characters")
            }
            if tenants.contains(where: { $0.name == entry.name }) { throw ValidationError("--tenants \(path): two tenants are named \(entry.name)") }
            if tenants.contains(where: { $0.token == token }) { throw ValidationError("--tenants \(path): \(label) has another tenant's token") }
            if let runs = entry.maxConcurrentRuns, runs < 1 { throw ValidationError("--tenants \(path): \(label) needs max_concurrent_runs ≥ 1") }
            let budget = entry.budget.map {
                Budget(maxModelCalls: $0.maxCalls, maxTokens: $0.maxTokens, maxCostUSD: $0.maxCostUSD,
                       deadline: $0.deadlineSeconds.map { .milliseconds(Int64($0 * 1000)) })
            }
            tenants.append(Tenant(
                name: entry.name, token: token, budget: budget, maxConcurrentRuns: entry.maxConcurrentRuns ?? 8,
                maxTotalTokens: entry.maxTotalTokens, maxTotalCostUSD: entry.maxTotalCostUSD))
        }
        return tenants
    }
}

/// How runs answer, for `rlm run`, `rlm bench`, `rlm serve` and `rlm mcp`.
struct AnswerOptions: ParsableArguments {
    @Option(help: "auto: one direct call with the whole context when it fits in half of the main model's window (see --context-window) and in --max-direct-tokens; a scan of up to --max-scan-parts such calls, one per part, when one part shows the answer; the RLM loop otherwise or when that gives nothing usable. rlm: always the loop; direct: always one call.")
    var strategy: Strategy = .auto

    @Option(help: "Ask auto's and direct's calls for JSON, {\"quote\", \"answer\"}, constrained by the server in this style (json-schema: OpenAI, vLLM, llama-server, LM Studio, Ollama; json-object: llama-cpp-python); an answer is taken only when its quote is in the text the call read. Default: plain text.")
    var structuredOutput: StructuredOutput?

    @Option(help: ArgumentHelp("The most parts of half the main model's window that auto's scan reads, one call each, before the context is the loop's; 0 turns the scan off. With --max-calls, at most half the calls.", valueName: "n"))
    var maxScanParts = 6

    @Option(help: ArgumentHelp("The most tokens of context auto answers without the loop (one direct call or a scan); larger contexts go to the loop whatever the window. 0: always the loop.", valueName: "n"))
    var maxDirectTokens = 16_384

    @Option(help: ArgumentHelp("How many characters of the context the loop's first message shows, so the model's first code fits its form; 0 shows none, as the paper's prompt does.", valueName: "n"))
    var contextPreview = 500

    @Flag(inversion: .prefixedNo, help: "When a limit other than the deadline is reached, ask the model once more for a final answer instead of failing, as the reference implementation does (the default); --no-final-answer-on-limit fails with the limit.")
    var finalAnswerOnLimit = true

    @Flag(help: "Question an answer once when its numbers (or words) appear in no REPL output and not in the context: the model is asked to print the evidence and submit again. Helps small models that make values up. The same as --assists default,+grounding.")
    var groundAnswers = false

    @Option(help: ArgumentHelp(
        "What the engine says and does beyond the paper's protocol: paper (the reference protocol exactly: the loop, its prompt layout, no notes, refusals or lenient reading), default, all, or a list that adds (+name) or removes (-name) assists from a preset, such as default,-repeated-cell or paper,+printed-nothing. Assists: \(Assists.Assist.allCases.map(\.name).joined(separator: ", ")); docs/repl-protocol.md lists what each says.",
        valueName: "preset[,±assist…]"))
    var assists = "default"

    @Option(help: ArgumentHelp("A file whose text is the system prompt instead of the engine's (for the reference implementation's own wording, say).", valueName: "file"))
    var systemPrompt: String?

    func validate() throws {
        guard maxScanParts >= 0 else { throw ValidationError("--max-scan-parts must be 0 (no scan) or more, not \(maxScanParts)") }
        guard maxDirectTokens >= 0 else { throw ValidationError("--max-direct-tokens must be 0 (always the loop) or more, not \(maxDirectTokens)") }
        guard contextPreview >= 0 else { throw ValidationError("--context-preview must be 0 (none) or more characters, not \(contextPreview)") }
        do {
            _ = try Assists(parsing: assists)
        } catch {
            throw ValidationError("--assists: \(error.message)")
        }
        if let path = systemPrompt, (try? String(contentsOfFile: path, encoding: .utf8))?.isEmpty != false {
            throw ValidationError("--system-prompt \(path) is not a readable, non-empty UTF-8 text file")
        }
    }

    func apply(to configuration: inout RLMConfiguration) {
        configuration.strategy = strategy
        configuration.maxScanParts = maxScanParts
        configuration.maxDirectTokens = maxDirectTokens
        configuration.contextPreviewCharacters = contextPreview
        configuration.structuredOutput = structuredOutput != nil
        configuration.finalAnswerOnLimit = finalAnswerOnLimit
        // Checked in validate().
        configuration.assists = (try? Assists(parsing: assists)) ?? .default
        if groundAnswers { configuration.assists.insert(.grounding) }
        configuration.systemPrompt = systemPrompt.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
    }
}

extension Strategy: ExpressibleByArgument {}
extension StructuredOutput: ExpressibleByArgument {}
