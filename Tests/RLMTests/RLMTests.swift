import Foundation
import PythonRuntime
import RLM
import RLMTesting
import Synchronization
import Testing

@Suite("RLM runs")
struct RLMTests {
    @Test("a needle is found in a 10 MB context by code")
    func needle() async throws {
        let secret = String(Int.random(in: 100_000...999_999))
        var lines: [String] = []
        for index in 0..<220_000 { lines.append("line \(index): nothing to see here, keep scrolling") }
        lines.insert("the magic number is \(secret)", at: 137_421)
        let context = lines.joined(separator: "\n")
        #expect(context.utf8.count > 10_000_000)
        let root = ScriptedModel.sequence([
            repl("print(type(context).__name__, len(context))\nprint(context[:60])"),
            repl("import re\nm = re.search(r'magic number is (\\d+)', context)\nanswer['content'] = m.group(1)\nanswer['ready'] = True"),
        ])
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root))
        let result = try await rlm.complete(query: "What is the magic number?", context: .text(context))
        #expect(result.answer == secret)
        #expect(result.iterations == 2)
        // The model saw the first cell's output, not the context.
        let second = root.requests[1].messages.last?.content ?? ""
        #expect(second.contains("str \(context.count)"))
        #expect(second.count < 2_000)
    }

    @Test("llm_query_batched aggregates concurrently, in order")
    func batchedAggregation() async throws {
        let chunks = (0..<16).map { index in String(repeating: "apple banana ", count: index + 1) }
        let sub = ScriptedModel(name: "counter", latency: .milliseconds(250)) { request in
            String(request.prompt.components(separatedBy: "apple").count - 1)
        }
        let root = ScriptedModel.sequence([
            repl("""
                counts = llm_query_batched(['Count: ' + c for c in context])
                print(counts)
                answer['content'] = str(sum(int(c) for c in counts))
                answer['ready'] = True
                """)
        ])
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub, maxConcurrentSubcalls: 8))
        let result = try await rlm.complete(query: "How many apples?", context: .texts(chunks))
        #expect(result.answer == String((1...16).reduce(0, +)))
        #expect(sub.callCount == 16)
        #expect(sub.peakConcurrency == 8)
        #expect(result.usage.byModel["counter"]?.calls == 16)
    }

    @Test("a failing batched slot reports an error without failing the others")
    func batchedFailure() async throws {
        struct Refused: Error {}
        let sub = ScriptedModel(name: "sub") { request in
            if request.prompt == "bad" { throw Refused() }
            return request.prompt.uppercased()
        }
        let root = ScriptedModel.sequence([
            repl("r = llm_query_batched(['a', 'bad', 'c'])\nanswer['content'] = repr([x[:7] for x in r]); answer['ready'] = True")
        ])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub))
            .complete(query: "q", context: .text(""))
        #expect(result.answer == "['A', '[error]', 'C']")
    }

    @Test("rlm_query starts a child RLM at depth 2 and falls back to a model call at depth 1")
    func recursion() async throws {
        let child = ScriptedModel.sequence([
            repl("answer['content'] = 'child saw ' + str(len(context)) + ' chars'\nanswer['ready'] = True")
        ], name: "child")
        let rootScript = [repl("r = rlm_query('twelve chars', model='child')\nanswer['content'] = r\nanswer['ready'] = True")]

        let deep = RLM(configuration: RLMConfiguration(
            rootModel: ScriptedModel.sequence(rootScript), models: ["child": child], maxDepth: 2))
        let result = try await deep.complete(query: "q", context: .text("root context"))
        #expect(result.answer == "child saw 12 chars")
        let childEvents = result.events.filter { $0.depth == 1 }
        #expect(!childEvents.isEmpty)
        #expect(childEvents.allSatisfy { $0.parentID == 0 && $0.nodeID != 0 })
        #expect(result.usage.byDepth[1]?.calls == 1)

        let fallbackModel = ScriptedModel(name: "child") { "plain answer to: " + $0.prompt }
        let shallow = RLM(configuration: RLMConfiguration(
            rootModel: ScriptedModel.sequence(rootScript), models: ["child": fallbackModel], maxDepth: 1))
        let flat = try await shallow.complete(query: "q", context: .text("root context"))
        #expect(flat.answer == "plain answer to: twelve chars")
        #expect(flat.events.allSatisfy { $0.depth == 0 })
    }

    @Test("an error is shown to the model, which recovers; variables survive it")
    func errorThenRecovery() async throws {
        let root = ScriptedModel.sequence([
            repl("total = 10\nratio = total / 0"),
            repl("answer['content'] = str(total * 2)\nanswer['ready'] = True"),
        ])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: "q", context: .text("x"))
        #expect(result.answer == "20")
        let feedback = root.requests[1].messages.last?.content ?? ""
        #expect(feedback.contains("ZeroDivisionError"))
        #expect(feedback.contains("line 2"))
    }

    @Test("long output is truncated with a marker before the model sees it")
    func truncation() async throws {
        let root = ScriptedModel.sequence([
            repl("print('H' * 5000 + 'M' * 100000 + 'T' * 5000)"),
            "FINAL(done)",
        ])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, maxOutputCharacters: 2_000))
            .complete(query: "q", context: .text("x"))
        #expect(result.answer == "done")
        let feedback = root.requests[1].messages.last?.content ?? ""
        #expect(feedback.contains("characters truncated"))
        #expect(feedback.contains(String(repeating: "H", count: 1000)))
        #expect(feedback.contains(String(repeating: "T", count: 999)))
        #expect(feedback.count < 3_000)
    }

    @Test("answer protocols", arguments: [
        ([repl("answer['content'] = 'dict'; answer['ready'] = True")], "dict"),
        ([repl("answer = {'content': 'rebound', 'ready': True}")], "rebound"),
        (["I am sure.\nFINAL(text answer)"], "text answer"),
        ([repl("result = 'from a variable'"), "FINAL_VAR(result)"], "from a variable"),
        ([repl("result = 'same reply'") + "\nFINAL_VAR(result)"], "same reply"),
        ([repl("print('FINAL(not yet)')\nx = 'FINAL(inside code)'"), "FINAL(after)"], "after"),
        (["FINAL_VAR(missing)", "FINAL(recovered)"], "recovered"),
        ([repl("answer['content'] = 'first'; answer['ready'] = True") + "\n" + repl("answer['content'] = 'second'"), ], "first"),
    ])
    func answerProtocols(script: [String], expected: String) async throws {
        let root = ScriptedModel.sequence(script)
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: "q", context: .text("c"))
        #expect(result.answer == expected)
    }

    @Test("blocks after the one that answers do not run")
    func blocksAfterAnswer() async throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-marker-\(UUID().uuidString)")
        let root = ScriptedModel.sequence([
            repl("answer['content'] = 'ok'; answer['ready'] = True") + "\n"
                + repl("open(\(PythonLiteral(marker.path)), 'w').write('ran')")
        ])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: "q", context: .text("c"))
        #expect(result.answer == "ok")
        #expect(!FileManager.default.fileExists(atPath: marker.path))
    }

    @Test("reserved names are restored after a cell and the model is told")
    func reservedNames() async throws {
        let root = ScriptedModel.sequence([
            repl("context = context * 2\nllm_query = None"),
            repl("answer['content'] = context + '|' + str(callable(llm_query)); answer['ready'] = True"),
        ])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: "q", context: .text("original"))
        #expect(result.answer == "original|True")
        #expect(root.requests[1].messages.last?.content.contains("were restored") == true)
    }

    @Test("a runaway cell is stopped by execTimeout; the model is told and the run goes on")
    func runawayCell() async throws {
        let root = ScriptedModel.sequence([
            repl("partial = 'kept'\nwhile True:\n    try:\n        pass\n    except BaseException:\n        pass"),
            repl("answer['content'] = partial; answer['ready'] = True"),
        ])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, execTimeout: .milliseconds(300)))
            .complete(query: "q", context: .text("c"))
        #expect(result.answer == "kept")
        #expect(root.requests[1].messages.last?.content.contains("was stopped") == true)
    }

    @Test("a context file is loaded; a missing one is a clear error")
    func fileContext() async throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-context-\(UUID().uuidString).txt")
        try Data("héllo file\n".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let root = ScriptedModel.sequence([repl("answer['content'] = context.strip(); answer['ready'] = True")])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: "q", context: .file(url))
        #expect(result.answer == "héllo file")

        let missing = URL(fileURLWithPath: "/nonexistent/context.txt")
        await #expect {
            try await RLM(configuration: RLMConfiguration(rootModel: ScriptedModel.sequence([]))).complete(query: "q", context: .file(missing))
        } throws: { error in
            (error as? RLMError)?.code == .invalidContext && (error as? RLMError)?.message.contains("/nonexistent/context.txt") == true
        }
    }

    @Test("a session keeps its REPL across turns")
    func session() async throws {
        let root = ScriptedModel.sequence([
            repl("notes = [len(context)]\nanswer['content'] = 'first'; answer['ready'] = True"),
            repl("notes.append(len(context))\nanswer['content'] = repr((notes, context_0, context_1, history[0]['answer'])); answer['ready'] = True"),
        ])
        let session = RLM(configuration: RLMConfiguration(rootModel: root)).session()
        _ = try await session.complete(query: "one", context: .text("abc"))
        let second = try await session.complete(query: "two", context: .text("defgh"))
        #expect(second.answer == "([3, 5], 'abc', 'defgh', 'first')")
        await session.close()
    }

    @Test("a session turn without a new context works on the latest one; a first turn without one is refused")
    func sessionTurnWithoutContext() async throws {
        let root = ScriptedModel.sequence([
            repl("answer['content'] = 'stored'; answer['ready'] = True"),
            repl("answer['content'] = repr((context, len(history))); answer['ready'] = True"),
        ])
        let empty = RLM(configuration: RLMConfiguration(rootModel: root)).session()
        do {
            _ = try await empty.complete(query: "what do you hold?")
            Issue.record("expected a refusal")
        } catch let error as RLMError {
            #expect(error.code == .invalidContext)
            #expect(error.message.contains("no context yet"))
        }
        #expect(root.requests.isEmpty, "a refused turn must not reach the model")
        await empty.close()
        let session = RLM(configuration: RLMConfiguration(rootModel: root)).session()
        _ = try await session.complete(query: "one", context: .text("zebra"))
        let second = try await session.complete(query: "two")
        #expect(second.answer == "('zebra', 1)")
        #expect(root.requests[1].messages.contains { $0.content.contains("context(s) earlier turns added") })
        await session.close()
    }

    @Test("custom Swift tools are callable from the REPL and listed in the prompt")
    func tools() async throws {
        let tool = RLMTool(name: "lookup", description: "lookup(key) -> str: reads the store") { arguments in
            .string("value-of-" + (arguments.positional.first?.stringValue ?? "?"))
        }
        let root = ScriptedModel.sequence([repl("answer['content'] = lookup('k'); answer['ready'] = True")])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, tools: [tool])).complete(query: "q", context: .text(""))
        #expect(result.answer == "value-of-k")
        #expect(root.requests[0].messages[0].content.contains("lookup(key) -> str: reads the store"))
    }

    @Test("two RLMs run concurrently in one process without mixing output")
    func concurrentRuns() async throws {
        func make(_ tag: String) -> (RLM, ScriptedModel) {
            let root = ScriptedModel.sequence([
                repl("for i in range(3000):\n    print('\(tag)', i)"),
                repl("answer['content'] = context; answer['ready'] = True"),
            ])
            return (RLM(configuration: RLMConfiguration(rootModel: root, maxOutputCharacters: 1_000_000)), root)
        }
        let (first, firstModel) = make("alpha")
        let (second, secondModel) = make("beta")
        async let a = first.complete(query: "q", context: .text("A"))
        async let b = second.complete(query: "q", context: .text("B"))
        let (resultA, resultB) = try await (a, b)
        #expect(resultA.answer == "A")
        #expect(resultB.answer == "B")
        let outputA = firstModel.requests[1].messages.last?.content ?? ""
        let outputB = secondModel.requests[1].messages.last?.content ?? ""
        #expect(outputA.contains("alpha 2999") && !outputA.contains("beta"))
        #expect(outputB.contains("beta 2999") && !outputB.contains("alpha"))
    }

    @Test("concurrent turns of a session run one at a time, in order, in one REPL; a closed session says so")
    func sessionTurnsQueue() async throws {
        let root = ScriptedModel(name: "root", latency: .milliseconds(50)) { request in
            let query = request.messages[1].content
            if query.contains("first") {
                return "```repl\nimport time\ntime.sleep(0.2)\nmarker = 'set by the first turn'\nanswer['content'] = 'one'\nanswer['ready'] = True\n```"
            }
            return "```repl\nanswer['content'] = marker + ' / ' + str(len(history))\nanswer['ready'] = True\n```"
        }
        let session = RLM(configuration: RLMConfiguration(rootModel: root)).session()
        async let first = session.complete(query: "the first turn", context: .text("a"))
        try await Task.sleep(for: .milliseconds(20))
        async let second = session.complete(query: "the second turn", context: .text("b"))
        let (one, two) = try await (first, second)
        #expect(one.answer == "one")
        #expect(two.answer == "set by the first turn / 1")
        await session.close()
        await #expect(throws: RLMError.self) { try await session.complete(query: "again", context: .text("c")) }
        do {
            _ = try await session.complete(query: "again", context: .text("c"))
        } catch let error as RLMError {
            #expect(error.code == .sessionClosed)
        }
    }

    @Test("a failed root model reaches the caller with its error as the cause")
    func modelFailureKeepsCause() async throws {
        struct RateLimited: Error, Equatable { var status = 429 }
        let root = ScriptedModel(name: "root") { _ in throw RateLimited() }
        do {
            _ = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: "q", context: .text("c"))
            Issue.record("expected a failure")
        } catch let error as RLMError {
            #expect(error.code == .modelFailed)
            #expect(error.cause as? RateLimited == RateLimited())
        }
    }

    @Test("a text context is described with Python's len(), not Swift's character count")
    func contextLengthIsPythonLength() async throws {
        let text = "👋🏽 naïve 한국어"
        let root = ScriptedModel.sequence([repl("answer['content'] = str(len(context)); answer['ready'] = True")])
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root)).complete(query: "q", context: .text(text))
        #expect(result.answer == String(text.unicodeScalars.count))
        #expect(root.requests[0].messages.contains { $0.content.contains("a str of \(result.answer) characters") })
    }

    @Test("events keep clipped sub-call prompts; the trajectory records their full length")
    func eventsClipLargePrompts() async throws {
        let sub = ScriptedModel(name: "sub") { "saw \($0.prompt.count)" }
        let root = ScriptedModel.sequence([repl("answer['content'] = llm_query(context); answer['ready'] = True")])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-clip-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        let writer = try TrajectoryWriter(url: url)
        let context = String(repeating: "0123456789", count: 100_000)
        let result = try await RLM(configuration: RLMConfiguration(rootModel: root, subModel: sub))
            .complete(query: "q", context: .text(context), trajectory: writer)
        writer.close()
        #expect(result.answer == "saw 1000000")
        let prompts = result.events.compactMap { event -> String? in
            guard case .subcallStarted(_, _, let prompt) = event.kind else { return nil }
            return prompt
        }
        #expect(prompts.count == 1)
        #expect((prompts.first?.count ?? 0) < 4_100)
        #expect(prompts.first?.contains("characters left out") == true)
        #expect(try String(contentsOf: url, encoding: .utf8).contains("\"prompt_chars\":1000000"))
    }
}

/// A Python string literal for a path.
func PythonLiteral(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
}
