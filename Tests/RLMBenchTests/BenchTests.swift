import Foundation
import RLM
import RLMBench
import RLMTesting
import Testing

@Suite("rlm bench: tasks, scores, runs and reports")
struct BenchTests {
    @Test("tasks come from the seed: the same seed gives the same tasks, another seed others, at about the size asked for")
    func deterministic() {
        for family in BenchTask.Family.allCases {
            let first = TaskGenerator.tasks(family, sizeTokens: 2_000, count: 3, seed: 7)
            let again = TaskGenerator.tasks(family, sizeTokens: 2_000, count: 3, seed: 7)
            let other = TaskGenerator.tasks(family, sizeTokens: 2_000, count: 3, seed: 8)
            #expect(first == again, "\(family)")
            #expect(first.map(\.context) != other.map(\.context), "\(family)")
            #expect(Set(first.map(\.id)).count == 3)
            for task in first {
                #expect(task.context.utf8.count >= 8_000 && task.context.utf8.count < 8_400, "\(task.id): \(task.context.utf8.count)")
            }
        }
        #expect(TaskGenerator.parseSize("8k") == 8_000 && TaskGenerator.parseSize("1M") == 1_000_000 && TaskGenerator.parseSize("x") == nil)
    }

    @Test("each family's expected answer is what the context says")
    func expectedAnswersHold() throws {
        for task in TaskGenerator.tasks(.sniah, sizeTokens: 3_000, count: 3, seed: 3) {
            guard case .contains(let value) = task.expected else { Issue.record("sniah expects a value"); continue }
            #expect(task.context.components(separatedBy: "is: \(value).").count == 2, "the needle appears once")
        }
        for task in TaskGenerator.tasks(.oolong, sizeTokens: 3_000, count: 2, seed: 3) {
            switch task.expected {
            case .integer(let count):
                let label = try #require(task.question.firstMatch(of: /label '(\w+)'/)).output.1
                #expect(task.context.components(separatedBy: "| label: \(label) |").count - 1 == count)
            case .choice(let label, let other):
                let labels = task.question.matches(of: /'(\w+)'/).map { String($0.output.1) }
                let counts = labels.map { task.context.components(separatedBy: "| label: \($0) |").count - 1 }
                #expect(labels[counts[0] >= counts[1] ? 0 : 1] == label)
                #expect(Set(labels) == [label, other])
            case .contains, .pairs:
                Issue.record("oolong does not ask for pairs")
            }
        }
        for task in TaskGenerator.tasks(.pairs, sizeTokens: 3_000, count: 2, seed: 3) {
            guard case .pairs(let pairs) = task.expected else { Issue.record("pairs expects pairs"); continue }
            let users = task.context.matches(of: /user (\d+) \| label: escalation/).map { Int($0.output.1)! }.sorted()
            #expect(pairs.count == users.count * (users.count - 1) / 2 && users.count >= 4)
        }
    }

    @Test("scores: contains, the first integer, and F1 over pairs in any order or spelling")
    func scoring() {
        #expect(Scorer.score("The value is 4421337.", expected: .contains("4421337")) == 1)
        #expect(Scorer.score("unknown", expected: .contains("4421337")) == 0)
        #expect(Scorer.score("There are 1,204 of them", expected: .integer(1204)) == 1)
        #expect(Scorer.score("12", expected: .integer(13)) == 0)
        #expect(Scorer.score("Billing.", expected: .choice("billing", over: "outage")) == 1)
        #expect(Scorer.score("billing or outage", expected: .choice("billing", over: "outage")) == 0, "naming both is no choice")
        #expect(Scorer.score("outage", expected: .choice("billing", over: "outage")) == 0)
        #expect(Scorer.score("2-1, 1-3, 2-3", expected: .pairs(["1-2", "1-3", "2-3"])) == 1)
        let half = Scorer.score("1-2, 5-6", expected: .pairs(["1-2", "3-4"]))
        #expect(abs(half - 0.5) < 1e-9)
        #expect(Scorer.score("none", expected: .pairs(["1-2"])) == 0)
    }

    /// A root that solves each family with code, as a capable model would.
    static func solver() -> ScriptedModel {
        ScriptedModel(name: "solver") { request in
            // Asked as the base model, with the context cut to its window, it cannot tell.
            if request.messages.first?.content.hasPrefix("Answer the question about the document") == true { return "I cannot tell." }
            let query = request.messages.first { $0.role == .user }?.content ?? ""
            let code: String
            if query.contains("special magic") {
                code = "import re\nanswer['content'] = re.search(r'special magic \\w+ for \\S+ is: (\\S+)\\.', context).group(1)"
            } else if let label = query.firstMatch(of: /How many records in the context have the label '(\w+)'/)?.output.1 {
                code = "answer['content'] = str(context.count('| label: \(label) |'))"
            } else if let match = query.firstMatch(of: /label appears in more records of the context: '(\w+)' or '(\w+)'/) {
                code = "a, b = '\(match.output.1)', '\(match.output.2)'\nanswer['content'] = a if context.count('label: ' + a + ' |') >= context.count('label: ' + b + ' |') else b"
            } else {
                code = "import re, itertools\nus = sorted({int(u) for u in re.findall(r'user (\\d+) \\| label: escalation', context)})\n"
                    + "answer['content'] = ', '.join(f'{a}-{b}' for a, b in itertools.combinations(us, 2))"
            }
            return "```repl\n\(code)\nanswer['ready'] = True\n```"
        }
    }

    @Test("a run scores the RLM and the base model, writes each result once, and a re-run skips finished tasks")
    func runAndResume() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("results.jsonl")
        let tasks = BenchTask.Family.allCases.flatMap { TaskGenerator.tasks($0, sizeTokens: 1_000, count: 2, seed: 5) }
        let root = Self.solver()
        let runner = BenchRunner(configuration: RLMConfiguration(rootModel: root), includeBase: true, baseWindowTokens: 512, concurrency: 3)
        let results = try await runner.run(tasks, resultsFile: file)
        #expect(results.count == tasks.count * 2)
        let rlm = results.filter { $0.mode == .rlm }
        #expect(rlm.allSatisfy { $0.score == 1 && $0.failure == nil && $0.calls == 1 }, "\(rlm.filter { $0.score < 1 })")
        let base = results.filter { $0.mode == .base }
        #expect(base.allSatisfy { $0.score == 0 && $0.calls == 1 && $0.answer == "I cannot tell." })
        let calls = root.callCount
        #expect(try BenchRunner.load(file).count == tasks.count * 2)

        // Everything is done: nothing runs again.
        let again = try await runner.run(tasks, resultsFile: file)
        #expect(again.count == tasks.count * 2)
        #expect(root.callCount == calls)

        // A cut-off last line (an interrupted run) is dropped and its task runs again.
        var text = try String(contentsOf: file, encoding: .utf8)
        text.removeLast(40)
        try text.write(to: file, atomically: true, encoding: .utf8)
        let resumed = try await runner.run(tasks, resultsFile: file)
        #expect(resumed.count == tasks.count * 2)
        #expect(root.callCount == calls + 1)

        let report = BenchReport(results: resumed)
        #expect(report.rows.count == 6)
        #expect(report.rows.filter { $0.mode == .rlm }.allSatisfy { $0.score == 1 })
        #expect(report.table().contains("sniah    rlm"))
        let html = report.html(title: "test")
        #expect(html.contains("<svg") && html.contains("polyline") && !html.contains("http"))
    }

    @Test("failures are results: a run that hits its limit is scored on what it had, and its kind is counted")
    func failuresAreCounted() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let stubborn = ScriptedModel(name: "stubborn") { _ in "```repl\nprint(len(context))\n```" }
        var configuration = RLMConfiguration(rootModel: stubborn, maxIterations: 2)
        configuration.finalAnswerOnLimit = false
        let runner = BenchRunner(configuration: configuration, includeBase: false)
        let tasks = TaskGenerator.tasks(.sniah, sizeTokens: 500, count: 2, seed: 1)
        let results = try await runner.run(tasks, resultsFile: directory.appendingPathComponent("results.jsonl"))
        #expect(results.count == 2)
        #expect(results.allSatisfy { $0.failure == "limit:iterations" && $0.score == 0 && $0.calls == 2 })
        #expect(BenchReport(results: results).rows.first?.failures == ["limit:iterations": 2])
    }
}
