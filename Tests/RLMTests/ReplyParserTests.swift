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

    @Test("FINAL outside code is an answer; FINAL inside a fence is not")
    func finalMarkers() {
        #expect(ReplyParser.finalMarker(in: "Done.\nFINAL(42)") == .text("42"))
        #expect(ReplyParser.finalMarker(in: "FINAL(a (nested) answer\nover two lines)") == .text("a (nested) answer\nover two lines"))
        #expect(ReplyParser.finalMarker(in: "FINAL_VAR(result)") == .variable("result"))
        #expect(ReplyParser.finalMarker(in: "  FINAL_VAR(\"result\")") == .variable("result"))
        #expect(ReplyParser.finalMarker(in: "```repl\nprint('FINAL(nope)')\nFINAL(nope)\n```") == nil)
        #expect(ReplyParser.finalMarker(in: "I will call FINAL(x) later") == nil)
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
        #expect(loop.cellFinished(output: "o2", failed: false, answer: .init(ready: true, content: "final")) == .finish("final"))
        #expect(loop.bestAnswer == "final")
    }

    @Test("the loop ends at its iteration limit and counts consecutive errors")
    func loopLimits() {
        var loop = RLMLoop(maxIterations: 2, maxConsecutiveErrors: 2)
        _ = loop.start()
        #expect(loop.modelReplied("no code") == .callModel(iteration: 2))
        #expect(loop.takeFeedback().count == 1)
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
        #expect(loop.takeFeedback().first?.contains("no variable named `missing`") == true)
    }
}
