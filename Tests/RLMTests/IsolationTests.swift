import Foundation
import PythonRuntime
import RLM
import RLMTesting
import Testing

/// Runs under the default isolation (``Isolation/Level/inProcess``). Each test fails on an engine
/// whose REPLs run with the host's authority.
@Suite("Isolation of model code in runs")
struct IsolationTests {
    @Test("a denial reaches the model as a PermissionError naming the rule, and the run goes on")
    func denialReachesTheModel() async throws {
        let root = ScriptedModel.sequence([
            repl("print(open('/etc/passwd').read()[:20])"),
            repl("import socket\nsocket.create_connection(('127.0.0.1', 9))"),
            "FINAL(done)",
        ])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: "q", context: .text("x"))
        #expect(result.answer == "done")
        let first = root.requests[1].messages.last?.content ?? ""
        #expect(first.contains("PermissionError: [sandbox: file-read] reading /etc/passwd is not allowed"))
        let second = root.requests[2].messages.last?.content ?? ""
        #expect(second.contains("[sandbox: network]"))
        #expect(root.requests[0].messages[0].content.contains("The REPL is sandboxed"))
    }

    @Test("the scratch directory is the REPL's own and is removed when the run ends")
    func scratchDirectory() async throws {
        let root = ScriptedModel.sequence([
            repl("""
                import tempfile, os
                path = os.path.join(tempfile.gettempdir(), 'notes.txt')
                open(path, 'w').write('kept between cells')
                answer['content'] = path
                """),
            repl("print(open(answer['content']).read())\nanswer['ready'] = True"),
        ])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: "q", context: .text("x"))
        #expect(result.answer.hasSuffix("/notes.txt"))
        #expect(result.answer.contains("rlm-repl-"))
        let outputs = cellOutputs(result)
        #expect(outputs.last?.contains("kept between cells") == true)
        #expect(!FileManager.default.fileExists(atPath: result.answer))
        #expect(!FileManager.default.fileExists(atPath: URL(fileURLWithPath: result.answer).deletingLastPathComponent().path))
    }

    @Test("a child RLM cannot reach its parent's variables, context or answer")
    func parentAndChild() async throws {
        let child = ScriptedModel.sequence([
            repl("""
                import gc, sys
                for attempt in (lambda: gc.get_objects(), lambda: gc.get_referrers(answer), lambda: sys._current_frames()):
                    try:
                        attempt()
                        print('escaped')
                    except PermissionError as error:
                        print(str(error).split(']')[0] + ']')
                frame = sys._getframe()
                depth = 0
                while frame is not None:
                    depth += 1
                    if 'PARENT-SECRET' in str(frame.f_globals.get('context', '')):
                        print('found the parent')
                    frame = frame.f_back
                print('frames', depth)
                answer['content'] = 'child'
                answer['ready'] = True
                """),
        ], name: "child")
        let root = ScriptedModel.sequence([
            repl("answer['content'] = 'parent draft'\nout = rlm_query('look around', model='child')\nprint(out)\nprint(answer['content'])"),
            "FINAL(parent)",
        ])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, models: ["child": child], maxDepth: 2))
            .complete(query: "q", context: .text("PARENT-SECRET context"))
        #expect(result.answer == "parent")
        let childOutput = cellOutputs(result, depth: 1).joined()
        #expect(childOutput.contains("[sandbox: introspection]\n[sandbox: introspection]\n[sandbox: introspection]"))
        #expect(!childOutput.contains("escaped"))
        #expect(!childOutput.contains("found the parent"))
        #expect(childOutput.contains("frames 1"))
        let parentFeedback = root.requests[1].messages.last?.content ?? ""
        #expect(parentFeedback.contains("child\nparent draft"))
    }

    @Test("two concurrent runs cannot see each other's variables or builtins")
    func concurrentRuns() async throws {
        let spy = ScriptedModel.sequence([
            repl("""
                import gc, builtins
                try:
                    found = [o for o in gc.get_objects() if isinstance(o, dict) and 'victim_secret' in o]
                    print('found', len(found))
                except PermissionError:
                    print('denied')
                builtins.ascii = lambda x: -1  # a name no other test uses: the module is shared while this runs
                print('victim_secret' in globals())
                """),
            "FINAL(spy done)",
        ])
        let victim = ScriptedModel.sequence([
            repl("victim_secret = context\nimport time\ntime.sleep(0.3)\nprint(ascii('abc'))"),
            "FINAL(victim done)",
        ])
        async let spyRun = RLM(configuration: RLMConfiguration(rootModel: spy)).complete(query: "q", context: .text("spy"))
        async let victimRun = RLM(configuration: RLMConfiguration(rootModel: victim)).complete(query: "q", context: .text("VICTIM"))
        let (spyResult, victimResult) = try await (spyRun, victimRun)
        #expect(spyResult.answer == "spy done")
        #expect(victimResult.answer == "victim done")
        #expect(spy.requests[1].messages.last?.content.contains("denied\nFalse") == true)
        #expect(victim.requests[1].messages.last?.content.contains("[block 1 output]\n'abc'") == true)
    }

    @Test("configured secrets never appear in output shown to the model, prompts, events or the answer")
    func secretsAreRedacted() async throws {
        let secret = "sk-test-\(UUID().uuidString)"
        let sub = ScriptedModel(name: "sub") { "echo: " + $0.prompt }
        let root = ScriptedModel.sequence([
            repl("key = context.split()[-1]\nprint(key)\nprint(llm_query('leak ' + key))"),
            repl("answer['content'] = 'the key is ' + key\nanswer['ready'] = True"),
        ])
        var configuration = RLMConfiguration(rootModel: root, subModel: sub)
        configuration.secrets = [secret]
        let trajectoryURL = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-redaction-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: trajectoryURL) }
        let writer = try TrajectoryWriter(url: trajectoryURL)
        let result = try await RLM(configuration: configuration)
            .complete(query: "q", context: .text("the injected text says " + secret), trajectory: writer)
        writer.close()
        #expect(result.answer == "the key is [redacted]")
        #expect(!root.requests.contains { $0.messages.contains { $0.content.contains(secret) } })
        #expect(!sub.requests.contains { $0.messages.contains { $0.content.contains(secret) } })
        #expect(sub.requests.first?.prompt == "leak [redacted]")
        #expect(!"\(result.events)".contains(secret))
        let trajectory = try String(contentsOf: trajectoryURL, encoding: .utf8)
        #expect(!trajectory.contains(secret))
        #expect(trajectory.contains("[redacted]"))
    }

    @Test("a cell that cannot be stopped is abandoned and the run goes on in a fresh REPL")
    func abandonedREPLIsReplaced() async throws {
        let root = ScriptedModel.sequence([
            // A lock acquired twice never returns to the interpreter, so the stop cannot land.
            repl("import threading\nkept = 1\nlock = threading.Lock()\nlock.acquire()\nlock.acquire()"),
            repl("print('kept' in globals(), len(context))\nanswer['content'] = 'recovered'\nanswer['ready'] = True"),
        ])
        // The fresh REPL must start within the cell limit: give it room on a busy test machine.
        var configuration = RLMConfiguration(rootModel: root, execTimeout: .seconds(2))
        configuration.stopGracePeriod = .milliseconds(200)
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("0123456789"))
        #expect(result.answer == "recovered")
        let feedback = root.requests[1].messages.last?.content ?? ""
        #expect(feedback.contains("could not be stopped"))
        #expect(feedback.contains("the REPL was restarted"))
        let outputs = cellOutputs(result)
        #expect(outputs.last?.contains("False 10") == true)
        let statuses = result.events.compactMap { event -> RLMEvent.CellStatus? in
            guard case .codeExecuted(_, _, _, _, let status, _) = event.kind else { return nil }
            return status
        }
        #expect(statuses == [.abandoned, .completed])
    }

    @Test("unrestricted isolation gives code the host's authority, as documented")
    func unrestricted() async throws {
        let root = ScriptedModel.sequence([
            repl("import socket\nsocket.socket().close()\nanswer['content'] = 'opened'\nanswer['ready'] = True"),
        ])
        var configuration = RLMConfiguration(rootModel: root)
        configuration.isolation = .unrestricted
        let result = try await RLM(configuration: configuration).complete(query: "q", context: .text("x"))
        #expect(result.answer == "opened")
        #expect(!root.requests[0].messages[0].content.contains("sandboxed"))
    }
}
