import Foundation
import Testing

@testable import RLM

/// The reply corpus (`Fixtures/replies.json`): tricky and real replies with the code blocks and
/// answer swift-rlm reads from each. `scripts/compare-parsers.py` runs the same corpus through
/// the reference implementation's parser.
@Suite("Reply corpus")
struct ReplyCorpusTests {
    struct Corpus: Decodable {
        struct Case: Decodable, CustomTestStringConvertible {
            struct Final: Decodable {
                var text: String?
                var variable: String?
            }
            var name: String
            var reply: String
            var code: [String]
            var final: Final?
            var testDescription: String { name }
        }
        var cases: [Case]
    }

    static let cases: [Corpus.Case] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/replies.json")
        guard let data = try? Data(contentsOf: url), let corpus = try? JSONDecoder().decode(Corpus.self, from: data) else { return [] }
        return corpus.cases
    }()

    @Test("the corpus is there")
    func loaded() {
        #expect(Self.cases.count >= 25)
        #expect(Self.cases.contains { $0.name.hasPrefix("real:") })
    }

    @Test("each reply parses as pinned", arguments: cases)
    func parse(_ entry: Corpus.Case) {
        #expect(ReplyParser.codeBlocks(in: entry.reply) == entry.code)
        let expected: ReplyParser.FinalMarker? = entry.final.flatMap { final in
            if let text = final.text { return .text(text) }
            return final.variable.map { .variable($0) }
        }
        #expect(ReplyParser.finalMarker(in: entry.reply) == expected)
    }
}
