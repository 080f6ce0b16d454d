// Runs one side-by-side scenario with swift-rlm against the scripted server and prints JSON
// timings, like Benchmarks/side-by-side/ref_runner.py does for the reference implementation.
//
//   SideBySide SCENARIO BASE_URL CONTEXT_FILE REPETITIONS LATENCY_MS
//   SideBySide breakdown BASE_URL ROUNDS seconds per call for each layer of a sub-call (Breakdown.swift)
import Foundation
import RLM
import RLMProviders

let arguments = CommandLine.arguments
if arguments.count == 4, arguments[1] == "breakdown", let rounds = Int(arguments[3]) {
    let result = try await Breakdown.run(baseURL: arguments[2], rounds: rounds)
    print(String(decoding: try JSONSerialization.data(withJSONObject: result), as: UTF8.self))
    exit(0)
}
guard arguments.count == 6, let repetitions = Int(arguments[4]), let latency = Int(arguments[5]) else {
    FileHandle.standardError.write(Data("usage: SideBySide SCENARIO BASE_URL CONTEXT_FILE REPETITIONS LATENCY_MS\n".utf8))
    exit(64)
}
let scenario = arguments[1]
let baseURL = arguments[2]
let contextURL = URL(fileURLWithPath: arguments[3])
let concurrent = scenario == "concurrent-64" ? 64 : 1
let batch = scenario == "batch-256" ? 256 : 16

let root = try OpenAICompatibleModel(configuration: .init(
    baseURL: baseURL, model: "root:\(scenario)@\(scenario.hasPrefix("concurrent-") ? latency : 0)", apiKeyVariable: nil))
let sub = try OpenAICompatibleModel(configuration: .init(baseURL: baseURL, model: "sub@\(latency)", apiKeyVariable: nil))
let rlm = RLM(configuration: RLMConfiguration(
    rootModel: root, subModel: sub, maxDepth: scenario == "depth-2" ? 2 : 1, maxIterations: 10,
    maxConcurrentSubcalls: batch))

func runOnce() async throws -> [String] {
    try await withThrowingTaskGroup(of: String.self) { group in
        for _ in 0..<concurrent {
            group.addTask { try await rlm.complete(query: "benchmark", context: .file(contextURL)).answer }
        }
        var answers: [String] = []
        for try await answer in group { answers.append(answer) }
        return answers
    }
}

// The same scenarios as scenarios.py's WARM get one untimed run first.
if ["batch-16", "batch-256", "depth-2", "concurrent-1", "concurrent-64"].contains(scenario) {
    _ = try await runOnce()
}

var times: [Double] = []
var answers: [String] = []
let clock = ContinuousClock()
for _ in 0..<repetitions {
    let start = clock.now
    let results = try await runOnce()
    let elapsed = clock.now - start
    times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    answers.append(Set(results).count == 1 ? results[0] : "MIXED")
}
let output = try JSONSerialization.data(withJSONObject: ["times": times, "answers": answers])
print(String(decoding: output, as: UTF8.self))
