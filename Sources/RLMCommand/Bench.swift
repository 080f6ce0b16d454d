import ArgumentParser
import Foundation
import RLMCommandCore
import RLM
import RLMBench

/// `rlm bench`: the paper's kinds of tasks, generated from a seed, scored, on any model.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score RLMs (and the base model alone) on generated long-context tasks.",
        discussion: """
            Families: sniah (a needle in a haystack, RULER-style), oolong (counts and comparisons over \
            labelled records) and pairs (pairs of records meeting a condition, scored by F1). Tasks come \
            from --seed, so runs are comparable. Each result is appended to OUT/results.jsonl as it ends: \
            a re-run with the same OUT skips finished tasks. The report goes to stdout (a table), \
            OUT/report.json and OUT/report.html (with plots of score against context length).
            """)

    @Option(help: "The API root, for example https://api.openai.com/v1 or http://127.0.0.1:8000/v1.")
    var baseURL: String

    @Option(help: "The model name the server knows.")
    var model: String

    @Option(help: "The model behind llm_query (default: the main model).")
    var subModel: String?

    @Option(help: "The API's shape.")
    var provider: Run.Provider = .openai

    @Option(help: "The environment variable with the API key (default OPENAI_API_KEY or ANTHROPIC_API_KEY; not needed for a server on this machine).")
    var apiKeyEnv: String?

    @Option(help: "Task families, comma-separated: sniah, oolong, pairs.")
    var families: String = "sniah,oolong,pairs"

    @Option(help: "Context sizes in tokens, comma-separated (8k, 32k, 1m, …).")
    var sizes: String = "8k,32k"

    @Option(help: "Tasks per family and size.")
    var tasks: Int = 3

    @Option(help: "The seed the tasks come from.")
    var seed: UInt64 = 1

    @Option(help: "The directory for results.jsonl, report.json and report.html (made if missing).")
    var out: String

    @Option(help: "Tasks run at once.")
    var concurrency: Int = 2

    @Option(help: "Model calls each RLM run may make.")
    var maxCalls: Int = 60

    @Option(help: "Turns each RLM node may take.")
    var maxIterations: Int = 12

    @Option(help: "Seconds each RLM run may take.")
    var deadline: Double = 600

    @Option(help: "The main model's context window in tokens (default: what the server reports, else 8192 for the base model's cut).")
    var contextWindow: Int?

    @Option(help: "The most tokens a reply may have.")
    var maxOutputTokens: Int?

    @Option(help: "A model's price as NAME=INPUT:OUTPUT[:CACHED_INPUT[:CACHE_WRITE]] in USD per million tokens (repeatable).")
    var price: [String] = []

    @Flag(help: "Run only the RLM, not the base model alone.")
    var noBase = false

    @Flag(help: "Keep each RLM run's trajectory in OUT/trajectories/TASK.jsonl (see `rlm view`).")
    var keepTrajectories = false

    @OptionGroup var answering: AnswerOptions

    mutating func validate() throws {
        if tasks < 1 { throw ValidationError("--tasks must be at least 1") }
        if concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
        if maxCalls < 1 { throw ValidationError("--max-calls must be at least 1") }
        if maxIterations < 1 { throw ValidationError("--max-iterations must be at least 1") }
        if deadline <= 0 { throw ValidationError("--deadline must be positive") }
        _ = try parsedFamilies()
        _ = try parsedSizes()
        _ = try Run.parsePrices(price)
    }

    func parsedFamilies() throws -> [BenchTask.Family] {
        try families.split(separator: ",").map { name in
            guard let family = BenchTask.Family(rawValue: name.trimmingCharacters(in: .whitespaces).lowercased()) else {
                throw ValidationError("--families: unknown family '\(name)'; the families are sniah, oolong, pairs")
            }
            return family
        }
    }

    func parsedSizes() throws -> [Int] {
        try sizes.split(separator: ",").map { text in
            guard let size = TaskGenerator.parseSize(String(text)), size >= 100 else {
                throw ValidationError("--sizes: '\(text)' is not a size of at least 100 tokens (write 8k, 32k, 1m or a number)")
            }
            return size
        }
    }

    func run() async throws {
        do {
            try await execute()
        } catch let error as ValidationError {
            throw error
        } catch is CancellationError {
            printError("rlm: interrupted; finished tasks are kept in \(out)/results.jsonl")
            throw ExitStatus.interrupted
        } catch {
            printError("rlm: \(error)")
            throw ExitStatus.failure
        }
    }

    private func execute() async throws {
        let output = try SecuredOutput.take()
        let directory = URL(fileURLWithPath: out)
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("cannot create the output directory \(out): \(error.localizedDescription)")
        }
        let root = try await Run.makeModel(
            provider: provider, baseURL: baseURL, name: model, apiKeyEnv: apiKeyEnv, maxOutputTokens: maxOutputTokens, window: contextWindow,
            structuredOutput: answering.structuredOutput)
        var sub: (any LanguageModel)?
        if let subModel {
            sub = try await Run.makeModel(
                provider: provider, baseURL: baseURL, name: subModel, apiKeyEnv: apiKeyEnv, maxOutputTokens: maxOutputTokens, window: nil,
                structuredOutput: answering.structuredOutput)
        }
        var configuration = RLMConfiguration(
            rootModel: root, subModel: sub, maxIterations: maxIterations,
            budget: Budget(maxModelCalls: maxCalls, deadline: .milliseconds(Int64(deadline * 1000)), prices: try Run.parsePrices(price)))
        answering.apply(to: &configuration)
        var all: [BenchTask] = []
        for family in try parsedFamilies() {
            for size in try parsedSizes() {
                all += TaskGenerator.tasks(family, sizeTokens: size, count: tasks, seed: seed)
            }
        }
        let trajectories = keepTrajectories ? URL(fileURLWithPath: out).appendingPathComponent("trajectories") : nil
        if let trajectories { try FileManager.default.createDirectory(at: trajectories, withIntermediateDirectories: true) }
        let runner = BenchRunner(
            configuration: configuration, includeBase: !noBase, baseWindowTokens: contextWindow ?? 8_192, concurrency: concurrency,
            trajectories: trajectories)
        let chosen = all
        let outcome = await Interruptible.run {
            try await runner.run(chosen, resultsFile: directory.appendingPathComponent("results.jsonl")) { result in
                let failure = result.failure.map { " (\($0))" } ?? ""
                printError("rlm bench: \(result.id) \(result.mode.rawValue): score \(String(format: "%.2f", result.score))\(failure), \(result.calls) calls, \(String(format: "%.1f", result.seconds)) s")
            }
        }
        let results = try outcome.get()
        // Only this run's tasks (results.jsonl may hold others from other settings).
        let ids = Set(all.map(\.id))
        let report = BenchReport(results: results.filter { ids.contains($0.id) && (!noBase || $0.mode == .rlm) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: directory.appendingPathComponent("report.json"))
        try Data(report.html(title: "rlm bench: \(model), seed \(seed)").utf8).write(to: directory.appendingPathComponent("report.html"))
        try output.writeLine(report.table())
    }
}
