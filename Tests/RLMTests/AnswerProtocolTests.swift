import Foundation
import RLM
import RLMTesting
import Testing

/// How answers reach the engine, through the real REPL: the shapes real small models wrote
/// (Qwen2.5-Coder-1.5B on needle and counting runs) that once ended runs with a made-up, empty
/// or raw answer.
@Suite("The answer protocol, as small models use it")
struct AnswerProtocolTests {
    func run(_ replies: [String], maxIterations: Int = 4, finalAnswerOnLimit: Bool = false) async throws -> (RLMResult, ScriptedModel) {
        let root = ScriptedModel.sequence(replies, name: "root")
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, maxIterations: maxIterations, finalAnswerOnLimit: finalAnswerOnLimit))
        return (try await rlm.complete(query: "How many lines mention alpha?", context: .text("alpha\nbeta\nalpha\n")), root)
    }

    @Test("Qwen2.5-Coder-1.5B's rerun of a cell that printed the count is pointed out, and it then submits the count")
    func repeatedCellThenSubmit() async throws {
        // From an 8K oolong trajectory: the first cell printed the right count, and every later
        // turn ran `print(len(matches))` again until the iteration limit. A second run may be a
        // check; the third is pointed out.
        let (result, root) = try await run([
            repl("import re\nmatches = re.findall(r'alpha', context)\nprint(len(matches))  # Output: 10"),
            repl("print(len(matches))  # Output: 10"),
            repl("print(len(matches))  # Output: 10"),
            repl("print(len(matches))  # Output: 10"),
            "FINAL(2)",
        ], maxIterations: 5)
        #expect(result.answer == "2")
        for turn in 1...3 { #expect(!root.requests[turn].prompt.contains("you ran this block before"), "turn \(turn + 1)") }
        #expect(root.requests[4].prompt.contains("[block 1 output]\n2\n\n[you ran this block before and it printed the same"))
        #expect(root.requests[4].prompt.contains("FINAL(2)"))
        // The conversation only grows: every turn stays, the repeated ones too.
        #expect(root.requests[4].messages.map(\.role) == [.system, .user] + Array(repeating: [ChatMessage.Role.assistant, .user], count: 4).flatMap { $0 })
        for turn in 1..<root.requests.count {
            #expect(Array(root.requests[turn].messages.prefix(root.requests[turn - 1].messages.count)) == root.requests[turn - 1].messages)
        }
    }

    @Test("after two turns that re-ran cells and showed nothing new, the model is asked for its answer with the outputs quoted, and may give it bare")
    func answerNowAfterStall() async throws {
        // From an 8K oolong trajectory: the first cell printed the right count (65), later turns
        // alternated between it and `print("We're not done yet.")`, and only the final-answer
        // request at the iteration limit got `FINAL(65)`.
        let count = repl("import re\nmatches = re.findall(r'alpha', context)\nprint(len(matches))")
        let stall = repl("print(\"We're not done yet.\")")
        let (result, root) = try await run([count, stall, count, stall, count, stall, "2"], maxIterations: 8)
        #expect(result.answer == "2")
        #expect(result.answeredAfterLimit == nil)
        #expect(root.requests.count == 7)
        for turn in 1...5 { #expect(!root.requests[turn].prompt.contains("Answer now")) }
        let asked = root.requests[6].messages.last?.content ?? ""
        #expect(asked.contains("Answer now from what the REPL has shown"))
        #expect(asked.contains("latest outputs:\n```\n2\n```\n```\nWe're not done yet.\n```"))
        #expect(asked.contains("How many lines mention alpha?"))
    }

    @Test("the final-answer request at a limit quotes the latest outputs")
    func finalRequestQuotesOutputs() async throws {
        // Qwen2.5-Coder-1.5B at a 32K oolong limit: a cell printed 193 (right) two turns before,
        // later cells printed "No match found.", and the forced reply gave the 3 its prose had made up.
        let (result, root) = try await run(
            [repl("print(context.count('alpha'))"), repl("print('No match found.')"), "FINAL(2)"], maxIterations: 2, finalAnswerOnLimit: true)
        #expect(result.answer == "2")
        let request = root.requests[2].messages.last?.content ?? ""
        #expect(request.contains("Give your final answer now"))
        #expect(request.contains("The REPL's latest outputs:\n```\n2\n```\n```\nNo match found.\n```"))
    }

    @Test("a forced final reply that is one bare name answers with the variable, or else the word")
    func forcedBareName() async throws {
        // Qwen2.5-Coder-1.5B at an 8K oolong limit replied ```repl\noutage\n```: a NameError, and no answer.
        let working = repl("n = context.count('alpha')")
        #expect(try await run([working, working, repl("alpha")], maxIterations: 2, finalAnswerOnLimit: true).0.answer == "alpha")
        let (result, _) = try await run([working, working, repl("n")], maxIterations: 2, finalAnswerOnLimit: true)
        #expect(result.answer == "2")
        #expect(result.answeredAfterLimit == .iterations)
        // A keyword is no answer.
        let error = await #expect(throws: RLMError.self) {
            try await run([working, working, repl("pass")], maxIterations: 2, finalAnswerOnLimit: true)
        }
        #expect(error?.limit == .iterations)
    }

    @Test("a reply to the answer request may state its answer in prose or as a lone literal or name; not beside code it has not seen run")
    func answerNowForms() async throws {
        let count = repl("print(context.count('alpha'))")
        #expect(try await run([count, count, count, count, "Final answer: 2"], maxIterations: 6).0.answer == "2")
        // Beside code, "Final answer" was written before the code ran (Qwen: "**Output:** 3
        // **Final answer:** 3" beside a block that printed 193): not taken in the loop; the
        // model sees the output and answers next turn.
        let (beside, shown) = try await run([count, count, count, count, repl("print(context.count('alpha'))") + "\n**Final answer:** 3", "FINAL(2)"], maxIterations: 7)
        #expect(beside.answer == "2")
        #expect(shown.callCount == 6)
        #expect(try await run([count, count, count, count, repl("2")], maxIterations: 6).0.answer == "2")
        // A bare name is read as FINAL(name): the variable, else the word.
        let named = repl("n = context.count('alpha')\nprint(n)")
        #expect(try await run([named, named, named, named, repl("n")], maxIterations: 6).0.answer == "2")
        #expect(try await run([named, named, named, named, repl("alpha")], maxIterations: 6).0.answer == "alpha")
        // The same reply in an ordinary turn is not an answer: the run goes on, here to its limit.
        let error = await #expect(throws: RLMError.self) { try await run([count, repl("# Final answer: 2"), "2"], maxIterations: 3) }
        #expect(error?.limit == .iterations)
        // Told that a reply had neither code nor an answer, a bare literal is the answer: Qwen
        // replied `9` five turns running after a cell printed 9.
        let (bare, told) = try await run([count, "2", "2"], maxIterations: 4)
        #expect(bare.answer == "2")
        #expect(told.callCount == 3)
        #expect(told.requests[2].prompt.contains("your reply had no ```repl block and no FINAL(...) answer: write code to make progress, or submit your answer from what the REPL printed] The REPL's latest output:\n```\n2\n```"))
        // Prose that states no answer is not taken: the model is told, and answers next turn.
        let (result, root) = try await run([count, count, count, count, "I am not sure yet.", "FINAL(2)"], maxIterations: 7)
        #expect(result.answer == "2")
        #expect(root.requests[5].prompt.contains("your reply had no ```repl block and no FINAL(...) answer"))
    }

    @Test("a statement that sets context to pasted text is left out and the rest of the block runs on the whole context")
    func pastedContext() async throws {
        // From oolong trajectories at a60f89e and c30fc76: cells began `context = """Record 0 | …`
        // (the preview), counted 5 in that sample, and did so again every turn, also when told.
        let pasted = repl("import re\ncontext = \"\"\"\nalpha\n\"\"\"\nn = context.count('alpha')\nprint(n)")
        let (result, root) = try await run([pasted, "FINAL(2)"])
        #expect(result.answer == "2")
        let told = root.requests[1].prompt
        #expect(told.contains("[block 1 output]\n2\n[note: the statement that set `context` to text written in your code was not run"))
        #expect(!told.contains("reserved and was restored"))
        // Code that transforms context runs as written, and context is restored after it.
        let (transformed, again) = try await run([repl("context = context.upper()\nprint(context.count('ALPHA'))"), "FINAL(2)"])
        #expect(transformed.answer == "2")
        #expect(again.requests[1].prompt.contains("[block 1 output]\n2\n[note: `context` is reserved and was restored]"))
        // A paste sharing its line with another statement is not cut apart: it runs, and context is restored.
        let (shared, _) = try await run([repl("context = 'alpha'; n = context.count('alpha')\nprint(n)"), "FINAL(1)"])
        #expect(shared.answer == "1")
    }

    @Test("a worker process leaves pasted context out the same way", .enabled(if: workersRun))
    func pastedContextInWorker() async throws {
        let root = ScriptedModel.sequence([repl("context = \"\"\"\nalpha\n\"\"\"\nprint(context.count('alpha'))"), "FINAL(2)"], name: "root")
        var configuration = RLMConfiguration(rootModel: root, maxIterations: 3)
        configuration.isolation = .process
        configuration.isolation.requiresAllLayers = false
        let result = try await RLM(configuration: configuration).complete(query: "How many lines mention alpha?", context: .text("alpha\nbeta\nalpha\n"))
        #expect(result.answer == "2")
        #expect(root.requests[1].prompt.contains("[block 1 output]\n2\n[note: the statement that set `context`"))
    }

    @Test("re-running a failing cell is told to change the code, not asked for an answer")
    func repeatedFailureIsNoStall() async throws {
        let failing = repl("print(undefined_name)")
        let (_, root) = try await run([failing, failing, failing, "FINAL(2)"], maxIterations: 5)
        #expect(root.requests.allSatisfy { !$0.prompt.contains("Answer now") })
        #expect(root.requests[3].prompt.contains("failed the same way: change the code"))
    }

    @Test("answer['content'] = answer is refused, not the dict's str")
    func answerHoldsItself() async throws {
        // Qwen2.5-Coder-1.5B at 32K: the run ended, exit 0, with "{'content': {...}, 'ready': True}".
        let (result, root) = try await run([repl("answer['content'] = answer\nanswer['ready'] = True"), "FINAL(2)"])
        #expect(result.answer == "2")
        #expect(root.requests[1].prompt.contains("[answer refused: answer[\"content\"] holds the answer dict itself, not an answer."))
        // At a limit, the forced reply's code is read the same way.
        let error = await #expect(throws: RLMError.self) {
            try await run([repl("x = 1"), repl("answer['content'] = answer\nanswer['ready'] = True")], maxIterations: 1, finalAnswerOnLimit: true)
        }
        #expect(error?.limit == .iterations)
    }

    @Test("FINAL(...) and FINAL(answer) in code submit nothing, and the model is told")
    func placeholdersInCode() async throws {
        let (result, root) = try await run([repl("FINAL(...)"), repl("FINAL(answer)"), repl("FINAL(context.count('alpha'))")])
        #expect(result.answer == "2")
        #expect(root.requests[1].prompt.contains("[answer refused: `Ellipsis` is a placeholder"))
        #expect(root.requests[2].prompt.contains("FINAL(answer) would submit the answer dict itself"))
        // The continue message holds no code a model could paste into a block.
        #expect(!root.requests[1].prompt.contains("answer[\"ready\"] = True or"))
    }

    @Test("repl(), the fence's tag called as print, prints; SHOW_VARS does not list it")
    func replPrints() async throws {
        // Qwen2.5-Coder-1.5B ended cells with repl(f"...") and, told of the NameError, ran the
        // same cell again every turn.
        let (result, root) = try await run([repl("n = context.count('alpha')\nrepl(f'alpha appears {n} times')\nSHOW_VARS()"), "FINAL(2)"])
        #expect(result.answer == "2")
        #expect(root.requests[1].prompt.contains("[block 1 output]\nalpha appears 2 times\nn: int"))
        #expect(!root.requests[1].prompt.contains("repl:"))
        #expect(!root.requests[1].prompt.contains("final:"))
    }

    @Test("FINAL and FINAL_VAR inside a code block submit, in either case")
    func finalInCode() async throws {
        #expect(try await run([repl("n = context.count('alpha')\nprint(n)\nFINAL(str(n))")]).0.answer == "2")
        #expect(try await run([repl("n = context.count('alpha')\nprint(n)\nfinal(n)")]).0.answer == "2")
        #expect(try await run([repl("lines = [l for l in context.splitlines() if 'alpha' in l]\nFINAL_VAR('lines')")]).0.answer == "['alpha', 'alpha']")
        #expect(try await run([repl("total = 2\nfinal_var('total')")]).0.answer == "2")
        // Qwen2.5-Coder-1.5B's spelling, asked for its final answer at the limit.
        #expect(try await run([repl("Final(200)")]).0.answer == "200")
        #expect(try await run([repl("total = 2\nFinal_Var('total')")]).0.answer == "2")
    }

    @Test("a lower-case final the model assigns itself stays its own variable")
    func finalIsNotReserved() async throws {
        let (result, _) = try await run([repl("final = 'mine'"), repl("print(final)\nanswer['content'] = final\nanswer['ready'] = True")])
        #expect(result.answer == "mine")
    }

    @Test("FINAL_VAR of a missing name in code tells the model, and the run goes on")
    func finalVarMissingInCode() async throws {
        let (result, root) = try await run([repl("FINAL_VAR('nothing')"), "FINAL(2)"])
        #expect(result.answer == "2")
        #expect(root.requests[1].prompt.contains("there is no variable named 'nothing'"))
    }

    @Test("an empty answer['ready'] submission is refused once and the model is told")
    func emptyReady() async throws {
        let (result, root) = try await run([
            repl("answer['ready'] = True"),
            repl("print('still working')"),
            repl("answer['content'] = '2'\nanswer['ready'] = True"),
        ])
        #expect(result.answer == "2")
        #expect(root.callCount == 3)
        #expect(root.requests[1].prompt.contains("[answer refused: the answer is empty"))
        // The refused submission is not submitted again by the next cell.
        #expect(!root.requests[2].prompt.contains("[answer refused"))
    }

    @Test("FINAL(name) of a variable submits its value; within a sentence it is read too")
    func finalOfVariable() async throws {
        #expect(try await run([repl("count = context.count('alpha')"), "The count is in `count`.\nFINAL(count)"]).0.answer == "2")
        #expect(try await run([repl("print(context.count('alpha'))"), "The answer is FINAL(2)."]).0.answer == "2")
    }

    @Test("the forced final answer is read from a code block, a FINAL_VAR, or plain prose")
    func forcedAnswers() async throws {
        let forced = "Give your final answer now"
        func forcedRun(_ last: String) async throws -> RLMResult {
            let root = ScriptedModel(name: "root") { request in
                request.prompt.contains(forced) ? last : repl("count = context.count('alpha')\nprint(count)")
            }
            let rlm = RLM(configuration: RLMConfiguration(rootModel: root, maxIterations: 2, finalAnswerOnLimit: true))
            return try await rlm.complete(query: "How many?", context: .text("alpha\nbeta\nalpha\n"))
        }
        #expect(try await forcedRun(repl("FINAL(\"0\")")).answer == "0")
        #expect(try await forcedRun("```repl\nFINAL(count)\n```").answer == "2")
        #expect(try await forcedRun("FINAL_VAR(count)").answer == "2")
        #expect(try await forcedRun("I counted them: FINAL(2) in all.").answer == "2")
        #expect(try await forcedRun("2").answer == "2")
        // Qwen2.5-Coder-1.5B answered a forced request with a block holding the count alone.
        #expect(try await forcedRun("```repl\n2\n```").answer == "2")
        #expect(try await forcedRun("```repl\n'alpha'\n```").answer == "alpha")
        // …and with a plain fence around the word, or around final(…).
        #expect(try await forcedRun("```\nalpha\n```").answer == "alpha")
        #expect(try await forcedRun("```\nfinal(\"2\")\n```").answer == "2")
        // …and in prose beside a block that submits nothing.
        #expect(try await forcedRun(repl("print(count)") + "\nFinal answer: `2`").answer == "2")
        #expect(try await forcedRun("**Final Answer**: 2.").answer == "2")
        // …or in a comment, the only line of its block.
        #expect(try await forcedRun(repl("# The run has reached its iteration limit. Final answer: 2")).answer == "2")
        let result = try await forcedRun("FINAL(count)")
        #expect(result.answer == "2")
        #expect(result.answeredAfterLimit == .iterations)
        let latencies = result.events.compactMap { event -> Duration? in
            guard case .modelReplied(_, _, _, let latency) = event.kind else { return nil }
            return latency
        }
        #expect(latencies.count == 3)
        #expect(latencies.allSatisfy { $0 > .zero })
    }

    @Test("a forced reply that echoes the instruction or answers nothing ends the run at its limit, not with the reply")
    func forcedPlaceholder() async throws {
        for last in ["FINAL(your answer)", "The run has reached its limit. Give your final answer now: FINAL(the answer itself)", repl("print('more work')")] {
            let root = ScriptedModel(name: "root") { request in
                request.prompt.contains("Give your final answer now") ? last : repl("answer['content'] = 'draft 2'")
            }
            let rlm = RLM(configuration: RLMConfiguration(rootModel: root, maxIterations: 2, finalAnswerOnLimit: true))
            do {
                let result = try await rlm.complete(query: "q", context: .text("c"))
                Issue.record("expected the iteration limit, got an answer: \(result.answer)")
            } catch let error as RLMError {
                #expect(error.limit == .iterations)
                #expect(error.partialAnswer == "draft 2")
            }
        }
    }

    @Test("a sub-call cancelled after it was sent still counts the prompt it sent")
    func cancelledSubcallIsCounted() async throws {
        let slow = ScriptedModel(name: "slow", latency: .seconds(60)) { _ in "late" }
        let root = ScriptedModel.sequence([repl("r = llm_query('a prompt of some length ' * 50, model='slow')")], name: "root")
        let rlm = RLM(configuration: RLMConfiguration(rootModel: root, models: ["slow": slow]))
        let run = rlm.run(query: "q", context: .text("c"))
        var finished: TokenUsage?
        for await event in run.events {
            switch event.kind {
            case .subcallStarted: run.cancel()  // as the deadline does, once the call is on its way
            case .subcallFinished(_, _, _, let usage, _, _): finished = usage
            default: break
            }
        }
        await #expect(throws: CancellationError.self) { try await run.result() }
        let usage = try #require(finished)
        #expect(usage.inputTokens >= 250)
    }

    @Test("with groundAnswers, a value code submitted unseen is questioned once, though the context holds it")
    func codeSubmissionsMustBeSeen() async throws {
        // Qwen2.5-Coder-1.5B on a 16K oolong count: `label: (.+)` took the rest of each line, so
        // the exact label was never found, and the cell submitted 0 without printing anything.
        let context = "Record 0 | user 1001 | label: praise | Lagoon river.\nRecord 1 | user 1002 | label: bug | Cinder.\n"
        let root = ScriptedModel.sequence([
            repl("import re\nlabels = re.findall(r'label: (.+)', context)\ncount = labels.count('praise')\nanswer['content'] = count\nanswer['ready'] = True"),
            repl("print(labels[:2])\nlabels = re.findall(r'label: (\\w+)', context)\nprint(labels.count('praise'))"),
            "FINAL(1)",
        ], name: "root")
        var configuration = RLMConfiguration(rootModel: root, maxIterations: 4)
        configuration.groundAnswers = true
        let result = try await RLM(configuration: configuration).complete(query: "How many records have the label 'praise'?", context: .text(context))
        #expect(result.answer == "1")
        #expect(root.requests[1].prompt.contains("[check before answering: your code submitted `0` without any output you have seen showing it"))
        // The same value submitted in prose after a cell printed it is taken at once.
        let printed = ScriptedModel.sequence([repl("print(context.count('praise'))"), "FINAL(1)"], name: "root")
        var plain = RLMConfiguration(rootModel: printed)
        plain.groundAnswers = true
        #expect(try await RLM(configuration: plain).complete(query: "q", context: .text(context)).answer == "1")
        #expect(printed.callCount == 2)
    }

    @Test("with groundAnswers, a literal written into the submitting block is questioned until an output the model saw shows it")
    func presetSubmission() async throws {
        // Qwen2.5-Coder-1.5B on an 8K oolong task: one block printed both counts (50 and 58) and
        // submitted 'praise', the label it had chosen before seeing them.
        let context = "label: praise\nlabel: billing\nlabel: billing\n"
        let counting = "p = context.count('label: praise')\nb = context.count('label: billing')\nprint(f\"'praise' appears {p} times.\")\nprint(f\"'billing' appears {b} times.\")\n"
        func grounded(_ replies: [String]) async throws -> (RLMResult, ScriptedModel) {
            let root = ScriptedModel.sequence(replies, name: "root")
            var configuration = RLMConfiguration(rootModel: root, maxIterations: 4)
            configuration.groundAnswers = true
            return (try await RLM(configuration: configuration).complete(query: "Which label appears in more records: 'praise' or 'billing'?", context: .text(context)), root)
        }
        let (result, root) = try await grounded([
            repl(counting + "answer[\"content\"] = 'praise'\nanswer[\"ready\"] = True"),
            repl("answer[\"content\"] = 'billing'\nanswer[\"ready\"] = True"),
        ])
        #expect(result.answer == "billing")
        #expect(root.requests[1].prompt.contains("your code submitted `praise`, written into it before you saw what the block printed"))
        // A value the block computed is taken at once, as is a literal an earlier output showed.
        #expect(try await grounded([repl(counting + "FINAL('praise' if p > b else 'billing')")]).1.callCount == 1)
        #expect(try await grounded([repl(counting), repl("FINAL('billing')")]).1.callCount == 2)
    }

    @Test("with groundAnswers, a value in no output and not in the context is questioned once, then taken")
    func grounding() async throws {
        func grounded(_ replies: [String], context: String = "alpha\nThe secret code is 48213.\nbeta\n", on: Bool = true) async throws -> (RLMResult, ScriptedModel) {
            let root = ScriptedModel.sequence(replies, name: "root")
            var configuration = RLMConfiguration(rootModel: root, maxIterations: 4)
            configuration.groundAnswers = on
            return (try await RLM(configuration: configuration).complete(query: "What is the secret code?", context: .text(context)), root)
        }
        // Made up: questioned, then taken when submitted again.
        let (madeUp, asked) = try await grounded([repl("print(len(context))"), "FINAL(12345)", "FINAL(12345)"])
        #expect(madeUp.answer == "12345")
        #expect(asked.callCount == 3)
        #expect(asked.requests[2].prompt.contains("[check before answering: `12345` from your answer appears in no REPL output"))
        // In the context, or printed by a cell: taken at once.
        #expect(try await grounded(["The code is FINAL(48213)."]).1.callCount == 1)
        #expect(try await grounded([repl("n = len(context.splitlines())\nprint(n)"), "FINAL(3 lines)"]).1.callCount == 2)
        #expect(try await grounded([repl("FINAL(str(len(context.splitlines())) + ' lines')\nprint(len(context.splitlines()), 'lines')")]).1.callCount == 1)
        // The query's words may be echoed in a prose answer.
        #expect(try await grounded([repl("print(1)"), "FINAL(secret)"], context: "alpha\nbeta\n").1.callCount == 2)
        // A claim printed as a literal is no evidence: Qwen printed "… is 'question'." and answered it.
        #expect(try await grounded([repl("print('The code is 777.')"), "FINAL(777)", "FINAL(777)"]).1.callCount == 3)
        #expect(try await grounded([repl("code = 777\nprint(f'The code is {code}.')"), "FINAL(777)"]).1.callCount == 2)
        // Qwen's prose said the count was 1 while its cell printed 200: the 1 of "[block 1 output]" is no evidence.
        #expect(try await grounded([repl("print(200)"), "The answer is `1`.\nFINAL(1)", "FINAL(1)"], context: "alpha\nbeta\n").1.callCount == 3)
        // A number is seen only whole: 12 is not in "2012".
        #expect(try await grounded([repl("print(2012)"), "FINAL(12)", "FINAL(12)"]).1.callCount == 3)
        // Nor in the context: Qwen's forced "2" at 32K was taken because records hold user ids like 2814.
        #expect(try await grounded(["FINAL(2)", "FINAL(2)"], context: "user 2814 | label: bug\n").1.callCount == 2)
        #expect(try await grounded(["FINAL(2814)"], context: "user 2814 | label: bug\n").1.callCount == 1)
        let mapped = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-ground-\(UUID().uuidString).txt")
        try Data("user 2814 | label: bug\n".utf8).write(to: mapped)
        defer { try? FileManager.default.removeItem(at: mapped) }
        for (reply, calls) in [("FINAL(2814)", 1), ("FINAL(81)", 2)] {
            let root = ScriptedModel.sequence([reply, reply], name: "root")
            var configuration = RLMConfiguration(rootModel: root, maxIterations: 4)
            configuration.groundAnswers = true
            _ = try await RLM(configuration: configuration).complete(query: "What is the user id?", context: .mappedFile(mapped))
            #expect(root.callCount == calls, "\(reply) in a mapped file")
        }
        // Off (the default): the made-up value ends the run.
        let (plain, once) = try await grounded(["FINAL(12345)"], on: false)
        #expect(plain.answer == "12345")
        #expect(once.callCount == 1)
    }
}
