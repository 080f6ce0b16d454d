import Foundation

/// Whether an answer is grounded (``RLMConfiguration/groundAnswers``): the tokens that carry it
/// appear in what the model has seen or in `context`.
enum Grounding {
    /// The answer's tokens that appear nowhere: its numbers, or, when it has none, its words of
    /// four letters or more. Matched without case in the outputs, as written in the context.
    static func missing(from answer: String, seen: [String], repl: REPLEnvironment) async throws -> [String] {
        let tokens = significantTokens(in: answer)
        guard !tokens.isEmpty else { return [] }
        let outputs = seen.joined(separator: "\n").lowercased()
        let unseen = tokens.filter { !outputs.contains($0.lowercased()) }
        guard !unseen.isEmpty else { return [] }
        let inContext = try await repl.contextContains(unseen)
        return zip(unseen, inContext).filter { !$0.1 }.map(\.0)
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
