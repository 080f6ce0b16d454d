// What adaptive depth and refinement buy, on synthetic tasks with scripted models whose
// accuracy depends on depth or on refinement (issue 15). Prints a Markdown table.
//
//   RecursionStrategies [QUESTIONS]
//
// Routing: QUESTIONS sums of integer lists, a quarter of them long. The plain sub-model adds
// short lists right and long ones wrong (off by one); a child RLM (three turns: look, compute in
// its REPL, answer) is always right; the scorer rates long lists 0.9 and short ones 0.1.
// Refinement: QUESTIONS runs whose first answer is wrong for two in five questions; a refinement
// step (a note, then the answer again) finds the mistake. Both are synthetic by construction:
// they show the mechanics and the accounting, not what a real model gains.
import Foundation
import RLM
import RLMTesting

let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 64 : 64

func lists() -> [[Int]] {
    (0..<count).map { index in
        let length = index % 4 == 0 ? 12 : 4
        return (0..<length).map { (index * 7 + $0 * 13) % 50 }
    }
}

/// Root and child RLM in one scripted model: the root's one cell fans out `call`; a child looks,
/// computes and answers.
func root(call: String) -> ScriptedModel {
    ScriptedModel(name: "root") { request in
        let turn = request.messages.count(where: { $0.role == .assistant })
        if request.messages.contains(where: { $0.role == .user && $0.content.contains("Your task is written in") }) {
            return [
                "```repl\nprint(context[:80])\n```",
                "```repl\nimport re\ntotal = sum(int(x) for x in re.findall(r'-?\\d+', context.split(':', 1)[1]))\nprint(total)\n```",
                "```repl\nanswer['content'] = str(total)\nanswer['ready'] = True\n```",
            ][min(turn, 2)]
        }
        return turn == 0
            ? "```repl\nimport ast\nLISTS = ast.literal_eval(context)\nqs = [f'Add these numbers: {\" \".join(map(str, l))}' for l in LISTS]\nr = \(call)\nprint(len(r))\n```"
            : "FINAL_VAR(r)"
    }
}

/// The plain sub-model: right on short lists, off by one on long ones.
let plain = ScriptedModel(name: "plain") { request in
    let numbers = request.prompt.split(separator: ":").last.map { $0.split(separator: " ").compactMap { Int($0) } } ?? []
    return String(numbers.reduce(0, +) + (numbers.count > 5 ? 1 : 0))
}

struct Row {
    var name: String
    var accuracy: Double
    var calls: Int
    var tokens: Int
    var deep: Int
}

func routingRow(_ name: String, call: String, router: (any SubcallRouter)? = nil) async throws -> Row {
    let data = lists()
    let model = root(call: call)
    var configuration = RLMConfiguration(rootModel: model, subModel: plain, maxDepth: 2, maxIterations: 5, maxConcurrentSubcalls: 64)
    configuration.maxConcurrentChildren = 64
    if let router { configuration.subcallRouter = router }
    let literal = "[" + data.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: ", ") + "]"
    // The lists reach the REPL as the context, a Python literal the cell reads.
    let result = try await RLM(configuration: configuration).complete(query: "sum each list", context: .text(literal))
    // The answer is the repr of a list of str; compare with the true sums.
    let answers = result.answer.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",").map {
        $0.trimmingCharacters(in: CharacterSet(charactersIn: " '"))
    }
    let truth = data.map { String($0.reduce(0, +)) }
    let right = zip(answers, truth).filter { $0 == $1 }.count
    let deep = result.events.filter { if case .childStarted = $0.kind { true } else { false } }.count
    return Row(name: name, accuracy: Double(right) / Double(data.count), calls: result.usage.total.calls,
               tokens: result.usage.total.tokens.totalTokens, deep: deep)
}

let scorer = ScriptedModel(name: "scorer") { request in
    let task = request.prompt.components(separatedBy: "Task: ").last ?? ""
    return task.split(separator: " ").count > 8 ? "0.9" : "0.1"
}

var rows: [Row] = []
rows.append(try await routingRow("always plain", call: "llm_query_batched(qs)"))
rows.append(try await routingRow("always recurse (depth=1)", call: "llm_query_batched(qs, depth=1)"))
rows.append(try await routingRow("scored router (capacity 0.25)", call: "llm_query_batched(qs, depth='auto')",
                                 router: ScoredRouter(scorer: scorer, capacityFactor: 0.25, threshold: 0.5)))
rows.append(try await routingRow("window router (default; all fit)", call: "llm_query_batched(qs, depth='auto')"))

print("| routing, \(count) sums (a quarter long) | accuracy | model calls | tokens | child RLMs |")
print("| --- | --- | --- | --- | --- |")
for row in rows {
    print("| \(row.name) | \(Int((row.accuracy * 100).rounded()))% | \(row.calls) | \(row.tokens) | \(row.deep) |")
}

// Refinement: the first answer is wrong for two in five questions; a step finds the mistake.
func refinementRow(_ name: String, refinement: Refinement?) async throws -> Row {
    var right = 0
    var calls = 0
    var tokens = 0
    for index in 0..<count {
        let truth = index * 3
        let wrongFirst = index % 5 < 2
        let model = ScriptedModel(name: "root") { request in
            let prompt = request.prompt
            if prompt.contains("only work on your notes") {
                return "```repl\nscratch += 'checked: %d' % (\(truth))\n```"
            }
            if prompt.contains("Now answer again") {
                return "```repl\nanswer['content'] = str(\(truth)) if 'checked' in scratch else current_answer\nanswer['ready'] = True\n```"
            }
            return "FINAL(\(wrongFirst ? truth + 1 : truth))"
        }
        var configuration = RLMConfiguration(rootModel: model, maxIterations: 12)
        configuration.refinement = refinement
        let result = try await RLM(configuration: configuration).complete(query: "what is \(index) times 3?", context: .text("\(index)"))
        if result.answer == String(truth) { right += 1 }
        calls += result.usage.total.calls
        tokens += result.usage.total.tokens.totalTokens
    }
    return Row(name: name, accuracy: Double(right) / Double(count), calls: calls, tokens: tokens, deep: 0)
}

let refinementRows = [
    try await refinementRow("no refinement", refinement: nil),
    try await refinementRow("refinement, up to 2 steps, halt when unchanged", refinement: Refinement(maxSteps: 2)),
]
print("")
print("| refinement, \(count) runs (first answer wrong in 2 of 5) | accuracy | model calls | tokens |")
print("| --- | --- | --- | --- |")
for row in refinementRows {
    print("| \(row.name) | \(Int((row.accuracy * 100).rounded()))% | \(row.calls) | \(row.tokens) |")
}
