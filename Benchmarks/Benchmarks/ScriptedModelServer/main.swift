// The scripted OpenAI-compatible server for the side-by-side benchmarks, on 127.0.0.1. It answers
// on its event loops (no task hop, Codable bodies), so its own cost per request is small next to
// either client's.
//
//   ScriptedModelServer SCENARIOS_JSON [PORT]     prints the bound port on stdout
//
// SCENARIOS_JSON maps each scenario name to {"turns": [...], "child_turns": [...]} (written by
// run.sh from scenarios.py). Model names carry the scenario and latency: "root:SCENARIO@MS" plays
// the root model through the scenario's turns; "sub@MS" answers "ok". A request without a system
// prompt is a plain sub-call whichever model it names (the reference routes a child's llm_query to
// the root model's backend); a root request whose messages lack the query "benchmark" is a child
// RLM's turn (depth-2). Usage is reported as one token per four characters.
import Foundation
import RLMTestServers

struct Scenario: Decodable, Sendable {
    var turns: [String]
    var child_turns: [String]?
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: ScriptedModelServer SCENARIOS_JSON [PORT]\n".utf8))
    exit(64)
}
let script = Script(scenarios: try JSONDecoder().decode([String: Scenario].self, from: Data(contentsOf: URL(fileURLWithPath: arguments[1]))))

struct Script: Sendable {
    let scenarios: [String: Scenario]

    /// "root:three-turn@50" → ("root:three-turn", 50 ms).
    static func split(_ model: String) -> (name: Substring, latency: Duration) {
        guard let at = model.lastIndex(of: "@") else { return (Substring(model), .zero) }
        return (model[..<at], .milliseconds(Int(model[model.index(after: at)...]) ?? 0))
    }

    func reply(_ request: ModelServers.ChatRequest) -> String {
        let name = Self.split(request.model).name
        guard name.hasPrefix("root:"), request.messages.contains(where: { $0.role == "system" }),
            let scenario = scenarios[String(name.dropFirst(5))]
        else { return "ok" }
        let turn = request.messages.count(where: { $0.role == "assistant" })
        let isChild = scenario.child_turns != nil && !request.messages.contains(where: { $0.content.contains("benchmark") })
        let turns = isChild ? scenario.child_turns! : scenario.turns
        return turns[min(turn, turns.count - 1)]
    }
}

let server = try await ModelServers.openAI(
    port: arguments.count > 2 ? Int(arguments[2]) ?? 0 : 0, latency: { Script.split($0.model).latency }, synchronousReply: { script.reply($0) })
FileHandle.standardOutput.write(Data("\(server.port)\n".utf8))
while true { try await Task.sleep(for: .seconds(3600)) }
