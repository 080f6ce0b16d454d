import Testing

@testable import RLM

@Suite("Reply parsing and the loop state machine")
struct ReplyParserTests {
    @Test("repl blocks are found in order; other fences are not code")
    func blocks() {
        let reply = """
            Let me look.
            ```repl
            x = 1
            ```
            Some prose.
            ```python
            not_run = True
            ```
            ```repl
            print(x)
            ```
            """
        #expect(ReplyParser.codeBlocks(in: reply) == ["x = 1", "print(x)"])
        #expect(ReplyParser.codeBlocks(in: "```repl\r\nx = 1\r\ny = 2\r\n```\r\n") == ["x = 1\ny = 2"])
    }

    @Test("a reply that starts inside its block (a first line `repl` alone, then a closing fence) is code, as Qwen writes it")
    func openingFenceLost() {
        // The reply Qwen2.5-Coder-1.5B gave through llama.cpp in a real run (docs/real-models.md).
        let qwen = "repl\n# Assuming the context is a list of lines...\nfor line in context.split('\\n'):\n    if 'quartz-480' in line:\n        answer[\"content\"] = line.strip().split()[-1]\n        answer[\"ready\"] = True\n```"
        #expect(ReplyParser.codeBlocks(in: qwen).count == 1)
        #expect(ReplyParser.codeBlocks(in: qwen).first?.hasPrefix("# Assuming") == true)
        #expect(ReplyParser.hasREPLBlock(qwen))
        // Prose that mentions repl, or a `repl` line with no closing fence, is not code.
        #expect(ReplyParser.codeBlocks(in: "repl\nis what I would use").isEmpty)
        #expect(ReplyParser.codeBlocks(in: "I will use the repl.\n```\nx\n```").isEmpty)
        #expect(ReplyParser.finalMarker(in: "repl\nFINAL(1)\n```") == nil)
    }

    @Test("FINAL outside code is an answer; FINAL inside a fence is not")
    func finalMarkers() {
        #expect(ReplyParser.finalMarker(in: "Done.\nFINAL(42)") == .text("42"))
        #expect(ReplyParser.finalMarker(in: "FINAL(a (nested) answer\nover two lines)") == .text("a (nested) answer\nover two lines"))
        #expect(ReplyParser.finalMarker(in: "FINAL_VAR(result)") == .variable("result"))
        #expect(ReplyParser.literalAnswer(in: "102\n") == "102")
        #expect(ReplyParser.literalAnswer(in: "-1_000") == "-1000")
        #expect(ReplyParser.literalAnswer(in: "\"billing\"") == "billing")
        for code in ["print(102)", "x = 1", "102\n103", "'a' + 'b'", "'it\\'s'", "count"] {
            #expect(ReplyParser.literalAnswer(in: code) == nil, "\(code)")
        }
        #expect(ReplyParser.statedFinalAnswer(in: "Final answer: `48`") == "48")
        #expect(ReplyParser.statedFinalAnswer(in: "**Final Answer**: `billing`") == "billing")
        #expect(ReplyParser.statedFinalAnswer(in: "The final answer is: \"3.5\".") == "3.5")
        #expect(ReplyParser.statedFinalAnswer(in: "```repl\n# final answer: 9\n```\nI will check more.") == nil)
        // Any case: Qwen2.5-Coder-1.5B answered a forced final request with `Final(3)`.
        #expect(ReplyParser.finalMarker(in: "Final(3)") == .text("3"))
        #expect(ReplyParser.finalMarker(in: "The answer is final(42).") == .text("42"))
        #expect(ReplyParser.finalMarker(in: "Final_Var(result)") == .variable("result"))
        #expect(ReplyParser.finalMarker(in: "The finale (act 3) was long.") == nil)
        #expect(ReplyParser.finalMarker(in: "  FINAL_VAR(\"result\")") == .variable("result"))
        #expect(ReplyParser.finalMarker(in: "```repl\nprint('FINAL(nope)')\nFINAL(nope)\n```") == nil)
        #expect(ReplyParser.finalMarker(in: "MY_FINAL(x) is a function") == nil)
        #expect(ReplyParser.finalMarker(in: "The FINAL answer comes later") == nil)
    }

    @Test("FINAL within a sentence, in inline code, in bold or quoted is read as small models write it", arguments: [
        ("The answer is FINAL(42).", ReplyParser.FinalMarker.text("42")),
        ("So the count is `FINAL(1284)` as printed above.", .text("1284")),
        ("**FINAL(Paris)**", .text("Paris")),
        ("`FINAL(Paris)`", .text("Paris")),
        ("FINAL(\"1284\")", .text("1284")),
        ("FINAL('a \"quoted\" word')", .text("a \"quoted\" word")),
        ("FINAL(\"two\" and \"three\")", .text("\"two\" and \"three\"")),
        ("I found it: FINAL(f(x) = 2) (see above)", .text("f(x) = 2")),
        ("Submitting FINAL_VAR(total) now.", .variable("total")),
    ])
    func finalWithinALine(reply: String, marker: ReplyParser.FinalMarker) {
        #expect(ReplyParser.finalMarker(in: reply) == marker)
    }

    @Test("empty answers and the engine's own placeholders are refused; real ones, however short, are not")
    func placeholders() {
        for refused in ["", "  ", "your answer", "Your Answer", "<your answer>", "<your answer as a string>", "`...`", "…",
                        "the answer itself", "'the value itself'", "Ellipsis", "FINAL", "final_var", "answer"] {
            #expect(RLMLoop.problem(with: refused) != nil, "\(refused)")
        }
        // A 30B model's recorded runs answered `[]`, as their task asked for an empty result; the
        // engine refused it as a placeholder and asked four more turns.
        for accepted in ["0", "42", "no", "None", "none", "Paris", "the answer", "the answer is 7", "value", "[]", "{}", "set()", "()",
                         "[answer]", "''", "placeholder"] {
            #expect(RLMLoop.problem(with: accepted) == nil, "\(accepted)")
        }
    }

    @Test("an empty list is taken on its first submission, in prose and in code")
    func emptyListAnswer() {
        var prose = RLMLoop(maxIterations: 3, maxConsecutiveErrors: nil)
        _ = prose.start()
        #expect(prose.modelReplied("The matching pairs:\nFINAL([])") == .finish("[]"))
        var code = RLMLoop(maxIterations: 3, maxConsecutiveErrors: nil)
        _ = code.start()
        #expect(code.modelReplied("```repl\npairs = []\nanswer['content'] = str(pairs)\nanswer['ready'] = True\n```") == .execute(cell: 1, code: "pairs = []\nanswer['content'] = str(pairs)\nanswer['ready'] = True"))
        #expect(code.cellFinished(output: "[block 1 output]\n(no output)", failed: false, answer: .init(ready: true, content: "[]")) == .finish("[]"))
    }

    @Test("a second turn that printed nothing is told to print, naming its last assignment; with found-nothing, an empty result to check the form")
    func printedNothing() {
        var loop = RLMLoop(maxIterations: 5, maxConsecutiveErrors: nil)
        _ = loop.start()
        // A block that only assigns is how many models work: no note the first time.
        _ = loop.modelReplied("```repl\nimport re\n```")
        _ = loop.cellFinished(output: "[block 1 output]\n(no output)", failed: false, answer: .init(ready: false, content: ""))
        #expect(loop.takeFeedbackTexts() == ["[block 1 output]\n(no output)"])
        _ = loop.modelReplied("```repl\ndef f(text):\n    total = 0\n    return total\nresult = f(context)\n```")
        _ = loop.cellFinished(output: "[block 1 output]\n(no output)", failed: false, answer: .init(ready: false, content: ""))
        #expect(loop.takeFeedbackTexts().last == "[the block printed nothing: to see a value, print it, for example print(result)]")
        _ = loop.modelReplied("```repl\nimport os\n```")
        _ = loop.cellFinished(output: "[block 1 output]\n(no output)", failed: false, answer: .init(ready: false, content: ""))
        #expect(loop.takeFeedbackTexts().last == "[the block printed nothing: to see a value, print it]")
        #expect(RLMLoop.lastAssignedName(in: "n: int = 3\nx == 2\nanswer['content'] = n\ncontext = 1") == "n")
        // An empty result is what a true count of 0 prints too: the default says nothing.
        _ = loop.modelReplied("```repl\nprint(len([r for r in records if r[2] == 'praise']))\n```")
        _ = loop.cellFinished(output: "[block 1 output]\n0", failed: false, answer: .init(ready: false, content: ""))
        #expect(loop.takeFeedbackTexts() == ["[block 1 output]\n0"])
        // With found-nothing, it is told to check the form of what it compared.
        var told = RLMLoop(maxIterations: 3, maxConsecutiveErrors: nil, assists: .all)
        _ = told.start()
        _ = told.modelReplied("```repl\nprint(len([r for r in records if r[2] == 'praise']))\n```")
        _ = told.cellFinished(output: "[block 1 output]\n0", failed: false, answer: .init(ready: false, content: ""))
        #expect(told.takeFeedbackTexts().last?.hasPrefix("[the block printed only `0`: if you expected to find something") == true)
        _ = told.modelReplied("```repl\nprint(len(records))\n```")
        _ = told.cellFinished(output: "[block 1 output]\n300", failed: false, answer: .init(ready: false, content: ""))
        #expect(told.takeFeedbackTexts() == ["[block 1 output]\n300"])
    }

    @Test("an output's lines that its code printed as literals are no evidence; computed ones are")
    func evidence() {
        let code = "n = 3\nprint('The label is question.')\nprint(n)\nprint(f'{n} records')"
        #expect(RLMLoop.evidence(output: "The label is question.\n3\n3 records", code: code) == "3\n3 records")
        #expect(RLMLoop.evidence(output: "question", code: "label = 'question'\nprint(label)") == "question")
    }

    @Test("setting context to a string literal is found; transforming or comparing it is not", arguments: [
        ("context = \"\"\"\nRecord 0 | x\n\"\"\"", true), ("context: str = 'x'", true), ("if True:\n    context = r'''x'''", true),
        ("context=\"x\"", true), ("context = context.lower()", false), ("if context == 'x': pass", false),
        ("text = \"context = 'x'\"", false), ("my_context = 'x'", false),
    ])
    func pastedContext(code: String, pasted: Bool) {
        #expect(REPLEnvironment.mayPasteContext(code) == pasted)
    }

    @Test("a submission's literal is found in the submitting statement only", arguments: [
        ("answer[\"content\"] = 'praise'", "praise", true), ("FINAL(36)", "36", true), ("  final('36')  # the count", "36", true),
        ("answer['content'] = \"billing\"", "billing", true), ("FINAL(str(n))", "36", false), ("print('praise')\nFINAL(best)", "praise", false),
        ("FINAL('praise' if p > b else 'billing')", "praise", false), ("answer['content'] = count", "36", false),
        ("FINAL(360)", "36", false), ("answer['content'] = 'praise'; answer['ready'] = True", "praise", true),
    ])
    func writtenInSubmission(code: String, answer: String, written: Bool) {
        #expect(Grounding.writtenInSubmission(answer, blocks: [code]) == written)
    }

    @Test("a refused FINAL goes back to the model, which answers on its next turn")
    func refusedFinal() {
        var loop = RLMLoop(maxIterations: 3, maxConsecutiveErrors: nil)
        _ = loop.start()
        #expect(loop.modelReplied("I will answer with FINAL(your answer)") == .callModel(iteration: 2))
        #expect(loop.takeFeedbackTexts().first?.contains("answer refused: FINAL(your answer): `your answer` is a placeholder") == true)
        #expect(loop.modelReplied("FINAL(17)") == .finish("17"))
    }

    @Test("an empty submission in code is refused and the next block still runs")
    func emptySubmission() {
        var loop = RLMLoop(maxIterations: 3, maxConsecutiveErrors: nil)
        _ = loop.start()
        #expect(loop.modelReplied("```repl\na\n```\n```repl\nb\n```") == .execute(cell: 1, code: "a"))
        #expect(loop.cellFinished(output: "o1", failed: false, answer: .init(ready: true, content: "")) == .execute(cell: 2, code: "b"))
        #expect(loop.takeFeedbackTexts() == ["o1", "[answer refused: the answer is empty. Put the real answer, found with the REPL, in answer[\"content\"] and set answer[\"ready\"] = True, or write FINAL(the answer)]"])
    }

    @Test("a block that repeats an earlier one with the same output is pointed out, with its output as the answer to submit")
    func repeatedCell() {
        var loop = RLMLoop(maxIterations: 6, maxConsecutiveErrors: nil)
        _ = loop.start()
        #expect(loop.modelReplied("```repl\nprint(len(matches))  # Output: 10\n```") == .execute(cell: 1, code: "print(len(matches))  # Output: 10"))
        #expect(loop.cellFinished(output: "[block 1 output]\n65", failed: false, answer: .init(ready: false, content: "")) == .callModel(iteration: 2))
        #expect(loop.takeFeedbackTexts() == ["[block 1 output]\n65"])
        // A second run may be a check: not pointed out.
        _ = loop.modelReplied("```repl\nprint(len(matches))  # Output: 10\n```")
        _ = loop.cellFinished(output: "[block 1 output]\n65", failed: false, answer: .init(ready: false, content: ""))
        #expect(loop.takeFeedbackTexts() == ["[block 1 output]\n65"])
        // A third run of the same code (indentation and blank lines aside) printing the same: pointed out.
        _ = loop.modelReplied("```repl\n\n  print(len(matches))  # Output: 10\n```")
        _ = loop.cellFinished(output: "[block 1 output]\n65", failed: false, answer: .init(ready: false, content: ""))
        let told = loop.takeFeedbackTexts()
        #expect(told.count == 2)
        #expect(told.last?.contains("you ran this block before and it printed the same") == true)
        #expect(told.last?.contains("FINAL(65)") == true)
        // The same code printing something else learned something: not pointed out.
        _ = loop.modelReplied("```repl\nprint(len(matches))  # Output: 10\n```")
        _ = loop.cellFinished(output: "[block 1 output]\n66", failed: false, answer: .init(ready: false, content: ""))
        #expect(loop.takeFeedbackTexts() == ["[block 1 output]\n66"])
        // A repeated failure is told to change.
        _ = loop.modelReplied("```repl\nx = 1/0\n```")
        _ = loop.cellFinished(output: "[block 1 raised ZeroDivisionError]\nZeroDivisionError: division by zero", failed: true, answer: .init(ready: false, content: ""))
        _ = loop.takeFeedbackTexts()
        _ = loop.modelReplied("```repl\nx = 1/0\n```")
        _ = loop.cellFinished(output: "[block 1 raised ZeroDivisionError]\nZeroDivisionError: division by zero", failed: true, answer: .init(ready: false, content: ""))
        #expect(loop.takeFeedbackTexts().last == "[you ran this block before and it failed the same way: change the code]")
    }

    @Test("FINAL(name) means the variable when the REPL has one, else the text")
    func finalOfAName() {
        var loop = RLMLoop(maxIterations: 3, maxConsecutiveErrors: nil)
        _ = loop.start()
        #expect(loop.modelReplied("FINAL(result)") == .resolveVariable("result"))
        #expect(loop.variableResolved(name: "result", value: "1284") == .finish("1284"))

        var literal = RLMLoop(maxIterations: 3, maxConsecutiveErrors: nil)
        _ = literal.start()
        #expect(literal.modelReplied("FINAL(Paris)") == .resolveVariable("Paris"))
        #expect(literal.variableResolved(name: "Paris", value: nil) == .finish("Paris"))

        var placeholder = RLMLoop(maxIterations: 3, maxConsecutiveErrors: nil)
        _ = placeholder.start()
        #expect(placeholder.modelReplied("FINAL(Ellipsis)") == .resolveVariable("Ellipsis"))
        #expect(placeholder.variableResolved(name: "Ellipsis", value: nil) == .callModel(iteration: 2))
        // `answer` is the protocol's dict, never what FINAL(answer) submits.
        #expect(placeholder.modelReplied("FINAL(answer)") == .callModel(iteration: 3))
    }

    @Test("a FINAL answer ends at the parenthesis that closes its line, not in later prose", arguments: [
        ("FINAL(42)\nHope that helps (ask again).", "42"),
        ("FINAL(42)\r\nHope that helps (ask again).\r\n", "42"),
        ("FINAL(f(x) = 2)   \nSee (1).", "f(x) = 2"),
        ("FINAL(first line\nsecond line)\nThanks (really).", "first line\nsecond line"),
        ("Answer:\n```repl\nprint(1)\n```\nFINAL(done) \nBye (for now)", "done"),
        ("FINAL(unclosed but (here)) trailing words", "unclosed but (here)"),
    ])
    func finalEndsAtItsLine(reply: String, answer: String) {
        #expect(ReplyParser.finalMarker(in: reply) == .text(answer))
    }

    @Test("the loop runs blocks in order and stops at the first answer")
    func loopStopsAtAnswer() {
        var loop = RLMLoop(maxIterations: 3, maxConsecutiveErrors: nil)
        #expect(loop.start() == .callModel(iteration: 1))
        #expect(loop.modelReplied("```repl\na\n```\n```repl\nb\n```\n```repl\nc\n```") == .execute(cell: 1, code: "a"))
        #expect(loop.cellFinished(output: "o1", failed: false, answer: .init(ready: false, content: "draft")) == .execute(cell: 2, code: "b"))
        #expect(loop.cellFinished(output: "o2", failed: false, answer: .init(ready: true, content: "the answer")) == .finish("the answer"))
        #expect(loop.bestAnswer == "the answer")
    }

    @Test("the loop ends at its iteration limit and counts consecutive errors")
    func loopLimits() {
        var loop = RLMLoop(maxIterations: 2, maxConsecutiveErrors: 2)
        _ = loop.start()
        #expect(loop.modelReplied("no code") == .callModel(iteration: 2))
        #expect(loop.takeFeedbackTexts().count == 1)
        #expect(loop.modelReplied("still none") == .stop(.iterations))

        var errors = RLMLoop(maxIterations: 10, maxConsecutiveErrors: 2)
        _ = errors.start()
        _ = errors.modelReplied("```repl\n1/0\n```")
        #expect(errors.cellFinished(output: "e", failed: true, answer: .init(ready: false, content: "")) == .callModel(iteration: 2))
        _ = errors.modelReplied("```repl\n1/0\n```")
        #expect(errors.cellFinished(output: "e", failed: true, answer: .init(ready: false, content: "")) == .stop(.consecutiveErrors))
    }

    @Test("FINAL_VAR of a missing name is reported and the loop goes on")
    func missingFinalVariable() {
        var loop = RLMLoop(maxIterations: 3, maxConsecutiveErrors: nil)
        _ = loop.start()
        #expect(loop.modelReplied("FINAL_VAR(missing)") == .resolveVariable("missing"))
        #expect(loop.variableResolved(name: "missing", value: nil) == .callModel(iteration: 2))
        #expect(loop.takeFeedbackTexts().first?.contains("no variable named `missing`") == true)
    }
}

extension RLMLoop {
    /// The texts of ``takeFeedback()``, in order.
    mutating func takeFeedbackTexts() -> [String] { takeFeedback().map(\.text) }
}
