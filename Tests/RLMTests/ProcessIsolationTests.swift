import Foundation
import PythonRuntime
@testable import RLM
import RLMTesting
import Testing

/// Runs whose REPLs live in confined worker processes (``Isolation/Level/process``).
@Suite("Process isolation in runs", .enabled(if: workersRun))
struct ProcessIsolationTests {
    static func configuration(_ root: ScriptedModel, sub: ScriptedModel? = nil, models: [String: ScriptedModel] = [:], maxDepth: Int = 1) -> RLMConfiguration {
        var configuration = RLMConfiguration(rootModel: root, subModel: sub, models: models, maxDepth: maxDepth)
        configuration.isolation = .process
        configuration.isolation.requiresAllLayers = true
        return configuration
    }

    @Test("a run in a worker finds its needle through llm_query_batched, with the budget kept in the host")
    func needle() async throws {
        let lines = (0..<50_000).map { $0 == 31_337 ? "the code is ZX-81" : "line \($0) filler text" }
        let sub = ScriptedModel(name: "reader") { request in
            request.prompt.contains("ZX-81") ? "ZX-81" : "NONE"
        }
        let root = ScriptedModel.sequence([
            repl("chunks = [context[i:i + 200_000] for i in range(0, len(context), 200_000)]\nfound = [r for r in llm_query_batched(chunks) if r != 'NONE']\nprint(len(chunks), found)"),
            "FINAL_VAR(found)",
        ])
        let result = try await RLM(configuration: Self.configuration(root, sub: sub)).complete(query: "q", context: .text(lines.joined(separator: "\n")))
        #expect(result.answer == "['ZX-81']")
        #expect(result.usage.byModel["reader"]?.calls == sub.callCount)
        #expect(sub.callCount > 1)
    }

    @Test("with warm workers, a run and its rlm_query child take started workers, each confined to a scratch directory of its own")
    func warmWorkers() async throws {
        // Settings of this test's own, so that its pool is not shared with other tests.
        let readable = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-warm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: readable, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: readable) }
        let write = "import tempfile, os\nopen(os.path.join(tempfile.gettempdir(), 'mine.txt'), 'w').write('x')\n"
        let root = ScriptedModel.sequence([
            repl(write + "child = rlm_query('inner', model='inner')\nprint(child)"),
            "FINAL_VAR(child)",
        ])
        let inner = ScriptedModel.sequence([repl(write + "answer['content'] = str(len(os.listdir(tempfile.gettempdir())))\nanswer['ready'] = True")])
        var configuration = Self.configuration(root, models: ["inner": inner], maxDepth: 2)
        configuration.isolation.readablePaths = [readable.path]
        configuration.isolation.warmWorkers = 2
        let pool = try #require(WarmWorkers.pool(for: configuration.isolation, maxOutputCharacters: configuration.maxOutputCharacters, stopGracePeriod: configuration.stopGracePeriod))
        let clock = ContinuousClock()
        let limit = clock.now + .seconds(60)
        while pool.statistics.ready < 2 && clock.now < limit { try await Task.sleep(for: .milliseconds(5)) }
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("text"))
        // The child sees only its own file in its scratch directory, not its parent's.
        #expect(result.answer == "1")
        #expect(pool.statistics.warm == 2)
        #expect(pool.statistics.cold == 0)
        await Isolation.shutDownWarmWorkers()
    }

    @Test("a worker that dies (killed from outside, as the OOM killer would) is reported and the run goes on in a fresh one")
    func crashThenRecovery() async throws {
        // The in-worker sandbox refuses every way code could crash its own process on purpose
        // (os._exit, signals, ctypes, faulthandler), so the host plays the OOM killer.
        // The worker is known by its scratch directory, which is on its command line.
        let killer = RLMTool(name: "oom_killer", description: "kills the worker using a scratch directory") { arguments in
            guard let scratch = arguments.positional.first?.stringValue else { return .none }
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
                guard let pid = pid_t(entry),
                    let command = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(entry)/cmdline")),
                    String(decoding: command, as: UTF8.self).contains(scratch)
                else { continue }
                kill(pid, SIGKILL)
            }
            return .none
        }
        let root = ScriptedModel.sequence([
            repl("import tempfile, time\nkept = 1\noom_killer(tempfile.gettempdir())\ntime.sleep(5)"),
            repl("print('kept' in globals(), len(context))\nanswer['content'] = 'recovered'\nanswer['ready'] = True"),
        ])
        var configuration = Self.configuration(root)
        configuration.tools = [killer]
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("0123456789"))
        #expect(result.answer == "recovered")
        let feedback = root.requests[1].messages.last?.content ?? ""
        #expect(feedback.contains("[block 1 ended its REPL: the REPL process ended (killed by SIGKILL)]"), "\(feedback)")
        #expect(feedback.contains("the REPL was restarted"))
        #expect(cellOutputs(result, depth: 0).last?.contains("False 10") == true)
    }

    @Test("a cell stuck in C is killed with its worker; the run continues instead of hanging the process")
    func stuckCell() async throws {
        let root = ScriptedModel.sequence([
            repl("answer['content'] = 'draft'"),
            repl("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')"),
            repl("print(len(context))\nanswer['content'] = 'after the kill'\nanswer['ready'] = True"),
        ])
        var configuration = Self.configuration(root)
        configuration.execTimeout = .milliseconds(500)
        // The worker is killed this long after the deadline (by default 5 s): code stuck in C
        // cannot be stopped, so the grace only delays the kill.
        configuration.stopGracePeriod = .milliseconds(300)
        // The match would take 2^64 steps: an answer at all means the worker was killed.
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("abc"))
        #expect(result.answer == "after the kill")
        #expect(root.requests[2].messages.last?.content.contains("was killed") == true)
        #expect(cellOutputs(result, depth: 0).last?.contains("3") == true)
    }

    @Test("monkeypatching a module in one run does not reach another run")
    func monkeypatchDoesNotCross() async throws {
        let patcher = ScriptedModel.sequence([
            repl("import json, time\njson.dumps = lambda *a, **k: 'PATCHED'\ntime.sleep(0.4)\nprint(json.dumps(1))"),
            "FINAL(patched)",
        ])
        let victim = ScriptedModel.sequence([
            repl("import json, time\ntime.sleep(0.2)\nprint(json.dumps([1, 2]))"),
            "FINAL(victim)",
        ])
        async let first = RLM(configuration: Self.configuration(patcher)).complete(query: "q", context: .text("a"))
        async let second = RLM(configuration: Self.configuration(victim)).complete(query: "q", context: .text("b"))
        let (patched, untouched) = try await (first, second)
        #expect(cellOutputs(patched, depth: 0).first?.contains("PATCHED") == true)
        #expect(cellOutputs(untouched, depth: 0).first?.contains("[1, 2]") == true)
    }

    @Test("a child RLM runs in a worker of its own and cannot reach its parent's files or variables")
    func parentAndChild() async throws {
        let child = ScriptedModel.sequence([
            repl("""
                try:
                    print(open(context).read())
                except PermissionError as error:
                    print('denied', str(error)[:25])
                print('PARENT_SECRET' in globals())
                answer['content'] = 'child done'
                answer['ready'] = True
                """),
        ], name: "child")
        let root = ScriptedModel.sequence([
            repl("import os, tempfile\nPARENT_SECRET = 1\npath = os.path.join(tempfile.gettempdir(), 'parent.txt')\nopen(path, 'w').write('parent notes')\nprint(rlm_query(path, model='child'))"),
            "FINAL(done)",
        ])
        let result = try await RLM(configuration: Self.configuration(root, models: ["child": child], maxDepth: 2))
            .complete(query: "q", context: .text("secret parent context"))
        #expect(result.answer == "done")
        let childOutput = cellOutputs(result, depth: 1).first ?? ""
        #expect(childOutput.contains("denied [sandbox: file-read]"), "\(childOutput)")
        #expect(childOutput.contains("False"))
        #expect(!childOutput.contains("parent notes"))
    }

    @Test("the worker holds no secrets: nothing of the host's environment, and the keys are redacted")
    func noSecrets() async throws {
        let root = ScriptedModel.sequence([
            repl("import os\nprint(dict(os.environ))\nprint(context)"),
            "FINAL(ok)",
        ])
        var configuration = Self.configuration(root)
        configuration.secrets = ["sk-process-secret-123"]
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("key sk-process-secret-123"))
        let output = cellOutputs(result, depth: 0).first ?? ""
        #expect(output.contains("{'PATH': '/usr/local/bin:/usr/bin:/bin'}"), "\(output)")
        #expect(output.contains("key [redacted]"))
    }
}
