import Foundation

/// Whether an answer is grounded (``RLMConfiguration/groundAnswers``): the tokens that carry it
/// appear in what the model has seen or in `context`.
enum Grounding {
    /// The answer's tokens that appear nowhere: its numbers, or, when it has none, its words of
    /// four letters or more. Matched without case in the outputs, as written in the context; a
    /// number in either only whole (`12` is not seen in `2012`, nor `2` in a context's `user
    /// 2814`). An answer submitted by code
    /// (`inContextCounts` false) must be in an output: the model submitted it without looking,
    /// and that it occurs somewhere in the context says nothing of whether it answers.
    static func missing(from answer: String, seen: [String], repl: REPLEnvironment, inContextCounts: Bool = true) async throws -> [String] {
        let tokens = significantTokens(in: answer)
        guard !tokens.isEmpty else { return [] }
        // The engine's block headers are not outputs: `1` is not seen in "[block 1 output]".
        let outputs = seen.joined(separator: "\n").replacing(/\[block \d+[^\]\n]*\]/, with: "").lowercased()
        let unseen = tokens.filter { !appears($0.lowercased(), in: outputs) }
        guard !unseen.isEmpty, inContextCounts else { return unseen }
        let inContext = try await repl.contextContains(unseen)
        return zip(unseen, inContext).filter { !$0.1 }.map(\.0)
    }

    /// Whether `token` is in `text`; a number only where no digit adjoins it.
    static func appears(_ token: String, in text: String) -> Bool {
        guard token.first?.isNumber == true else { return text.contains(token) }
        var searched = text[...]
        while let found = searched.range(of: token) {
            let before = found.lowerBound > text.startIndex ? text[text.index(before: found.lowerBound)] : nil
            let after = found.upperBound < text.endIndex ? text[found.upperBound] : nil
            if before?.isNumber != true, after?.isNumber != true { return true }
            searched = text[found.upperBound...]
        }
        return false
    }

    /// Whether a statement of `blocks` that submits (`answer["content"] = …`, `FINAL(…)`) has
    /// `answer` written in it as a literal (`answer["content"] = 'praise'`): a value the model
    /// chose before seeing what the block prints. Qwen2.5-Coder-1.5B printed "'praise' appears
    /// 50 times" and "'billing' appears 58 times" from the very block that submitted 'praise'.
    static func writtenInSubmission(_ answer: String, blocks: [String]) -> Bool {
        let value = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !value.isEmpty else { return false }
        for line in blocks.joined(separator: "\n").split(separator: "\n") {
            // `FINAL('praise')`, `final(36)`, `answer["content"] = "praise"`: the whole argument
            // or right-hand side is one literal.
            guard let match = line.firstMatch(
                of: /(?i)(?:\bfinal\s*\(\s*|\banswer\s*\[\s*["']content["']\s*\]\s*=\s*)(?:'([^'\\]*)'|"([^"\\]*)"|(-?\d[\d_]*(?:\.\d+)?))\s*\)?\s*(?:[;#].*)?$/)
            else { continue }
            let literal = match.output.1 ?? match.output.2 ?? match.output.3
            if literal.map(String.init)?.trimmingCharacters(in: .whitespaces) == value { return true }
        }
        return false
    }

    static func significantTokens(in answer: String) -> [String] {
        var tokens: [String] = []
        var current = ""
        for character in answer {
            if character.isLetter || character.isNumber || character == "." && current.last?.isNumber == true {
                current.append(character)
            } else {
                if !current.isEmpty { tokens.append(current) }
                current = ""
            }
        }
        if !current.isEmpty { tokens.append(current) }
        tokens = tokens.map { $0.hasSuffix(".") ? String($0.dropLast()) : $0 }
        let numbers = tokens.filter { $0.contains(where: \.isNumber) }
        if !numbers.isEmpty { return Array(Set(numbers)).sorted() }
        return Array(Set(tokens.filter { $0.count >= 4 })).sorted()
    }
}
