import Testing

@testable import RLM

/// The one answer reader, level by level: each level reads what the one before reads, and more.
@Suite("Answer reading by leniency")
struct AnswerReaderTests {
    typealias Leniency = AnswerReader.Leniency

    /// For each reply, what each level reads (paper, protocolForms, answerRequest, finalRequest).
    static let table: [(reply: String, readings: [AnswerReader.Reading?])] = [
        ("FINAL(42)", [.text("42"), .text("42"), .text("42"), .text("42")]),
        ("FINAL(total)", [.text("total"), .variableOrText("total"), .variableOrText("total"), .variableOrText("total")]),
        ("FINAL_VAR(total)", [.variable("total"), .variable("total"), .variable("total"), .variable("total")]),
        ("The answer is FINAL(7).", [nil, .text("7"), .text("7"), .text("7")]),
        ("Final(3)", [nil, .text("3"), .text("3"), .text("3")]),
        ("65", [nil, nil, .text("65"), .text("65")]),
        ("```repl\noutage\n```", [nil, nil, .variableOrText("outage"), .variableOrText("outage")]),
        ("Final answer: `48`", [nil, nil, .text("48"), .text("48")]),
        ("```repl\nprint(n)\n```\n**Final answer:** 3", [nil, nil, nil, .text("3")]),
        ("I think it is billing, since most lines say so.", [nil, nil, nil, .text("I think it is billing, since most lines say so.")]),
        ("```\nbilling\n```", [nil, nil, nil, .text("billing")]),
        // SmolLM2 echoing the final-answer request: the answer ends at the balancing ")", and
        // the refusals assist then refuses the engine's own placeholder.
        ("FINAL(the answer itself) on a line of its own, or FINAL_VAR(name) for a REPL variable that holds it.\nDone (really).",
         [.text("the answer itself"), .text("the answer itself"), .text("the answer itself"), .text("the answer itself")]),
    ]

    @Test("each level reads what the one before reads, and more", arguments: 0..<table.count)
    func levels(row: Int) {
        let (reply, readings) = Self.table[row]
        let blocks = ReplyParser.codeBlocks(in: reply)
        for (level, expected) in zip([Leniency.paper, .protocolForms, .answerRequest, .finalRequest], readings) {
            let read = AnswerReader.marker(in: reply, leniency: level) ?? AnswerReader.stated(in: reply, blocks: blocks, leniency: level)
            #expect(read == expected, "\(level) reading \(reply.debugDescription)")
        }
    }
}
