// The server-scale goals (issue 12), measured in one process and printed as JSON.
//
//   ServerScale idle COUNT                         COUNT idle sessions with 1 KB contexts
//   ServerScale concurrent COUNT LATENCY_MS        COUNT runs at once against a scripted server
//   ServerScale concurrent-in-process COUNT LATENCY_MS   the same with in-process models (no HTTP)
//   ServerScale batched COUNT LATENCY_MS CHILDREN  one rlm_query_batched over COUNT prompts,
//                                                  at most CHILDREN child RLMs (and model
//                                                  calls) at once
//
// Every scenario takes `--threads-per-level N` (PythonThreads.limitPerLevel). The scripted
// OpenAI-compatible server runs in this process on the shared event loops (so its CPU and its
// threads are counted too); each request waits LATENCY_MS before its answer. A run is the
// three-turn trajectory of the side-by-side benchmarks: print the context's length, one
// llm_query in a cell (which holds a pool thread while it waits), then the answer.
// Memory and threads come from /proc/self/status, sampled every 5 ms.
import Foundation
import PythonRuntime
import RLM
import RLMProviders
import RLMTestServers
import RLMTesting

var arguments = Array(CommandLine.arguments.dropFirst())
if let flag = arguments.firstIndex(of: "--threads-per-level"), flag + 1 < arguments.count, let limit = Int(arguments[flag + 1]) {
    PythonThreads.limitPerLevel = limit
    arguments.removeSubrange(flag...(flag + 1))
}
func usage() -> Never {
    FileHandle.standardError.write(Data("""
        usage: ServerScale idle COUNT | concurrent COUNT LATENCY_MS | batched COUNT LATENCY_MS CHILDREN  [--threads-per-level N]

        """.utf8))
    exit(64)
}
guard arguments.count >= 2, let count = Int(arguments[1]), count != 0 else { usage() }

/// Fields of /proc/self/status, in kB (Threads as a count).
func status() -> [String: Int] {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return [:] }
    var fields: [String: Int] = [:]
    for line in text.split(separator: "\n") {
        let parts = line.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, ["VmRSS", "RssAnon", "Threads"].contains(String(parts[0])) else { continue }
        fields[String(parts[0])] = Int(parts[1].split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
    }
    return fields
}

/// The largest value of each status field while it runs.
final class Peaks: @unchecked Sendable {
    private let lock = NSLock()
    private var peaks: [String: Int] = [:]
    private var timer: DispatchSourceTimer?

    func start() {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "peaks"))
        timer.schedule(deadline: .now(), repeating: .milliseconds(5))
        timer.setEventHandler { [self] in sample() }
        timer.resume()
        self.timer = timer
    }

    func sample() {
        let now = status()
        lock.withLock { for (key, value) in now { peaks[key] = max(peaks[key] ?? 0, value) } }
    }

    func stop() -> [String: Int] {
        timer?.cancel()
        sample()
        return lock.withLock { peaks }
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

func emit(_ object: [String: Any]) {
    var object = object
    object["python_threads"] = PythonThreads.count
    object["threads_per_level"] = PythonThreads.limitPerLevel
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// The scripted server: "root:concurrent@MS" plays the three-turn run, "root:batched-N@MS" a root
/// whose one cell fans out into N child RLMs (each one llm_query and an answer), "sub@MS" answers
/// "ok".
func startServer() async throws -> ScriptedHTTPServer {
    try await ModelServers.openAI(latency: { request in
        guard let at = request.model.lastIndex(of: "@") else { return .zero }
        return .milliseconds(Int(request.model[request.model.index(after: at)...]) ?? 0)
    }, synchronousReply: { request in
        guard request.model.hasPrefix("root:"), request.messages.contains(where: { $0.role == "system" }) else { return "ok" }
        let turn = request.messages.count(where: { $0.role == "assistant" })
        let isChild = !request.messages.contains(where: { $0.content.contains("benchmark") })
        if request.model.hasPrefix("root:batched-") && !isChild {
            let fanOut = request.model.dropFirst("root:batched-".count).prefix(while: \.isNumber)
            return "```repl\nr = rlm_query_batched(['child %d' % i for i in range(\(fanOut))])\n"
                + "answer['content'] = str(sum(1 for x in r if x == 'child:ok'))\nanswer['ready'] = True\n```"
        }
        if isChild {
            return "```repl\ny = llm_query('leaf')\nanswer['content'] = 'child:' + y\nanswer['ready'] = True\n```"
        }
        return [
            "```repl\nprint(len(context))\n```",
            "```repl\nx = llm_query('say ok')\nprint(x)\n```",
            "```repl\nanswer['content'] = 'done:' + x\nanswer['ready'] = True\n```",
        ][min(turn, 2)]
    })
}

func models(_ server: ScriptedHTTPServer, root: String, latency: Int) throws -> (any LanguageModel, any LanguageModel) {
    let baseURL = "http://127.0.0.1:\(server.port)/v1"
    return (
        try OpenAICompatibleModel(configuration: .init(baseURL: baseURL, model: "\(root)@\(latency)", apiKeyVariable: nil)),
        try OpenAICompatibleModel(configuration: .init(baseURL: baseURL, model: "sub@\(latency)", apiKeyVariable: nil))
    )
}

/// A model that answers after `latency` ms with its replies in turn (by the number of assistant
/// messages), like the scripted server but without HTTP.
struct SleepyModel: LanguageModel {
    let latency: Int
    let replies: [String]
    var modelName: String { "sleepy" }
    func complete(_ messages: [ChatMessage]) async throws -> ModelResponse {
        try await Task.sleep(for: .milliseconds(latency))
        let turn = messages.count(where: { $0.role == .assistant })
        return ModelResponse(text: replies[min(turn, replies.count - 1)], usage: TokenUsage(inputTokens: 1, outputTokens: 1))
    }
}

let clock = ContinuousClock()
let context = String(repeating: "0123456789abcdef", count: 64)

switch arguments[0] {
case "idle":
    // Sessions that have each answered one turn over a 1 KB context and wait for the next.
    let rlm = RLM(configuration: RLMConfiguration(rootModel: ScriptedModel { _ in "FINAL(ok)" }))
    var sessions: [RLMSession] = []
    for _ in 0..<2 {
        let session = rlm.session()
        _ = try await session.complete(query: "q", context: .text(context))
        sessions.append(session)
    }
    let before = status()
    let start = clock.now
    for _ in 0..<count {
        let session = rlm.session()
        _ = try await session.complete(query: "q", context: .text(context))
        sessions.append(session)
    }
    let elapsed = clock.now - start
    let after = status()
    emit([
        "scenario": "idle", "sessions": count, "context_bytes": context.utf8.count,
        "seconds": seconds(elapsed),
        "rss_kb_before": before["VmRSS"] ?? 0, "rss_kb_after": after["VmRSS"] ?? 0,
        "rss_kb_per_session": Double((after["VmRSS"] ?? 0) - (before["VmRSS"] ?? 0)) / Double(count),
        "anon_kb_per_session": Double((after["RssAnon"] ?? 0) - (before["RssAnon"] ?? 0)) / Double(count),
        "threads_before": before["Threads"] ?? 0, "threads_after": after["Threads"] ?? 0,
    ])
    for session in sessions { await session.close() }

case "concurrent", "concurrent-in-process":
    guard arguments.count == 3, let latency = Int(arguments[2]) else { usage() }
    // In process: the same trajectory from scripted models that sleep, with no HTTP, to tell the
    // engine's share of a run's CPU from the HTTP client's and server's.
    let inProcess = arguments[0] == "concurrent-in-process"
    let server = inProcess ? nil : try await startServer()
    let (root, sub): (any LanguageModel, any LanguageModel) = try server.map { try models($0, root: "root:concurrent", latency: latency) } ?? (
        SleepyModel(latency: latency, replies: [
            "```repl\nprint(len(context))\n```",
            "```repl\nx = llm_query('say ok')\nprint(x)\n```",
            "```repl\nanswer['content'] = 'done:' + x\nanswer['ready'] = True\n```",
        ]),
        SleepyModel(latency: latency, replies: ["ok"]))
    let rlm = RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub, maxIterations: 10))
    @Sendable func run() async -> String {
        (try? await rlm.complete(query: "benchmark", context: .text(context)).answer) ?? "ERROR"
    }
    // One run alone, warmed: the yardstick.
    _ = await run()
    var alone: [Double] = []
    for _ in 0..<5 {
        let start = clock.now
        _ = await run()
        alone.append(seconds(clock.now - start))
    }
    if count < 0 {
        // Sequential runs (COUNT given negative): the engine's cost per run with nothing beside it.
        let start = clock.now
        for _ in 0..<(-count) { _ = await run() }
        emit(["scenario": "sequential", "runs": -count, "ms_per_run": seconds(clock.now - start) * 1000 / Double(-count), "latency_ms": latency])
        exit(0)
    }
    let peaks = Peaks()
    peaks.start()
    let start = clock.now
    let answers = await withTaskGroup(of: String.self) { group in
        for _ in 0..<count { group.addTask { await run() } }
        var answers: [String] = []
        for await answer in group { answers.append(answer) }
        return answers
    }
    let together = seconds(clock.now - start)
    let peak = peaks.stop()
    emit([
        "scenario": "concurrent", "runs": count, "latency_ms": latency,
        "one_run_seconds": median(alone), "all_runs_seconds": together, "ratio": together / median(alone),
        "errors": answers.count(where: { $0 != "done:ok" }),
        "peak_threads": peak["Threads"] ?? 0, "peak_rss_kb": peak["VmRSS"] ?? 0, "peak_anon_kb": peak["RssAnon"] ?? 0,
        "http": !inProcess,
    ])
    try await server?.shutdown()

case "batched":
    guard arguments.count == 4, let latency = Int(arguments[2]), let children = Int(arguments[3]) else { usage() }
    let server = try await startServer()
    let (root, sub) = try models(server, root: "root:batched-\(count)", latency: latency)
    // Model calls in flight across the tree are capped by maxConcurrentSubcalls too: as many as
    // children, so that the children's own limit is what is measured.
    var configuration = RLMConfiguration(rootModel: root, subModel: sub, maxDepth: 2, maxIterations: 10, maxConcurrentSubcalls: children)
    configuration.maxConcurrentChildren = children
    configuration.budget.maxModelCalls = 10 * count + 10
    let rlm = RLM(configuration: configuration)
    let peaks = Peaks()
    peaks.start()
    let start = clock.now
    let answer: String
    do {
        answer = try await rlm.complete(query: "benchmark", context: .text(context)).answer
    } catch {
        answer = "ERROR: \(error)"
    }
    let elapsed = seconds(clock.now - start)
    let peak = peaks.stop()
    emit([
        "scenario": "batched", "prompts": count, "latency_ms": latency, "max_concurrent_children": children,
        "seconds": elapsed, "answer": answer, "correct": answer == "\(count)",
        "peak_threads": peak["Threads"] ?? 0, "peak_rss_kb": peak["VmRSS"] ?? 0, "peak_anon_kb": peak["RssAnon"] ?? 0,
    ])
    try await server.shutdown()

default:
    usage()
}
