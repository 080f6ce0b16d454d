import Foundation

/// A benchmark task: a context, a question about it, and what a right answer is.
public struct BenchTask: Sendable, Hashable, Codable {
    /// The task families, after the RLM paper's evaluation.
    public enum Family: String, Sendable, Hashable, Codable, CaseIterable {
        /// Single needle in a haystack (RULER's S-NIAH): one fact hidden in filler text.
        case sniah
        /// Aggregation over labelled records (OOLONG-like): counts and comparisons per label.
        case oolong
        /// Pairs of records that meet a condition (OOLONG-Pairs-like), scored by F1.
        case pairs
    }

    /// What counts as right.
    public enum Expected: Sendable, Hashable, Codable {
        /// The answer contains this text (case-insensitive).
        case contains(String)
        /// The answer names the first option and not the second (case-insensitive): one of two
        /// choices, where an answer that names both has not chosen.
        case choice(String, over: String)
        /// The first integer in the answer is this one.
        case integer(Int)
        /// The set of `a-b` pairs in the answer, scored by F1 against these.
        case pairs([String])
    }

    /// `family-size-index`, unique in a run and stable across runs with the same seed.
    public var id: String
    public var family: Family
    /// The context's intended size in tokens (about 4 characters each).
    public var sizeTokens: Int
    public var context: String
    public var question: String
    public var expected: Expected
}

/// A deterministic random source (SplitMix64): the same seed gives the same tasks everywhere.
struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Makes tasks from a seed.
public enum TaskGenerator {
    /// Characters per token assumed when sizing contexts.
    public static let charactersPerToken = 4

    static let words = [
        "river", "lantern", "copper", "meadow", "signal", "harbor", "quartz", "willow", "ember", "canyon",
        "falcon", "orchard", "pepper", "glacier", "velvet", "thunder", "marble", "saddle", "beacon", "cobalt",
        "prairie", "juniper", "anchor", "tundra", "walnut", "cinder", "lagoon", "summit", "bramble", "pebble",
    ]
    static let labels = ["billing", "outage", "feature", "praise", "bug", "question"]

    /// Parses sizes such as `8k`, `32K`, `1m` or `4000` (tokens).
    public static func parseSize(_ text: String) -> Int? {
        let lower = text.lowercased().trimmingCharacters(in: .whitespaces)
        if lower.hasSuffix("k"), let value = Double(lower.dropLast()) { return Int(value * 1_000) }
        if lower.hasSuffix("m"), let value = Double(lower.dropLast()) { return Int(value * 1_000_000) }
        return Int(lower)
    }

    /// `count` tasks of `family` with contexts of about `sizeTokens` tokens.
    public static func tasks(_ family: BenchTask.Family, sizeTokens: Int, count: Int, seed: UInt64) -> [BenchTask] {
        (0..<count).map { index in
            var random = SeededRandom(seed: seed ^ UInt64(sizeTokens) &* 31 ^ UInt64(index) &* 1_000_003 ^ UInt64(family.rawValue.hashValueStable))
            let id = "\(family.rawValue)-\(sizeTokens)-\(index)"
            switch family {
            case .sniah: return needle(id: id, sizeTokens: sizeTokens, index: index, random: &random)
            case .oolong: return aggregation(id: id, sizeTokens: sizeTokens, index: index, random: &random)
            case .pairs: return pairs(id: id, sizeTokens: sizeTokens, random: &random)
            }
        }
    }

    static func sentence(_ random: inout SeededRandom) -> String {
        let count = Int.random(in: 6...12, using: &random)
        var words = (0..<count).map { _ in Self.words.randomElement(using: &random)! }
        words[0] = words[0].prefix(1).uppercased() + words[0].dropFirst()
        return words.joined(separator: " ") + "."
    }

    static func needle(id: String, sizeTokens: Int, index: Int, random: inout SeededRandom) -> BenchTask {
        let kinds = ["number", "word", "code"]
        let kind = kinds[index % kinds.count]
        let key = "\(Self.words.randomElement(using: &random)!)-\(Int.random(in: 100...999, using: &random))"
        let value: String
        switch kind {
        case "number": value = String(Int.random(in: 1_000_000...9_999_999, using: &random))
        case "word": value = "\(Self.words.randomElement(using: &random)!)\(Self.words.randomElement(using: &random)!)"
        default: value = String(format: "%08X", UInt32.random(in: .min ... .max, using: &random))
        }
        let target = sizeTokens * charactersPerToken
        var text = ""
        let depth = Double.random(in: 0.1...0.9, using: &random)
        var placed = false
        while text.utf8.count < target {
            if !placed && Double(text.utf8.count) >= depth * Double(target) {
                text += "The special magic \(kind) for \(key) is: \(value). "
                placed = true
            }
            text += sentence(&random) + (Int.random(in: 0..<6, using: &random) == 0 ? "\n" : " ")
        }
        if !placed { text += "The special magic \(kind) for \(key) is: \(value).\n" }
        return BenchTask(
            id: id, family: .sniah, sizeTokens: sizeTokens, context: text,
            question: "What is the special magic \(kind) for \(key) mentioned in the context? Answer with the value only.",
            expected: .contains(value))
    }

    /// Records of about 25 tokens: `Record N | user U | label: L | text`.
    static func records(sizeTokens: Int, random: inout SeededRandom, users: ClosedRange<Int> = 1000...9999) -> [(user: Int, label: String, line: String)] {
        let target = sizeTokens * charactersPerToken
        var records: [(Int, String, String)] = []
        var size = 0
        var index = 0
        while size < target {
            let user = Int.random(in: users, using: &random)
            let label = Self.labels.randomElement(using: &random)!
            let line = "Record \(index) | user \(user) | label: \(label) | \(sentence(&random))\n"
            records.append((user, label, line))
            size += line.utf8.count
            index += 1
        }
        return records
    }

    static func aggregation(id: String, sizeTokens: Int, index: Int, random: inout SeededRandom) -> BenchTask {
        let records = records(sizeTokens: sizeTokens, random: &random)
        let context = records.map(\.line).joined()
        var counts: [String: Int] = [:]
        for record in records { counts[record.label, default: 0] += 1 }
        if index % 2 == 0 {
            let label = Self.labels.randomElement(using: &random)!
            return BenchTask(
                id: id, family: .oolong, sizeTokens: sizeTokens, context: context,
                question: "How many records in the context have the label '\(label)'? Answer with the number only.",
                expected: .integer(counts[label, default: 0]))
        }
        // Two labels with different counts.
        var pair = Self.labels.shuffled(using: &random).prefix(2).map { $0 }
        if counts[pair[0], default: 0] == counts[pair[1], default: 0] {
            pair[1] = Self.labels.first { $0 != pair[0] && counts[$0, default: 0] != counts[pair[0], default: 0] } ?? pair[1]
        }
        let more = counts[pair[0], default: 0] >= counts[pair[1], default: 0] ? 0 : 1
        return BenchTask(
            id: id, family: .oolong, sizeTokens: sizeTokens, context: context,
            question: "Which label appears in more records of the context: '\(pair[0])' or '\(pair[1])'? Answer with the label only.",
            expected: .choice(pair[more], over: pair[1 - more]))
    }

    static func pairs(id: String, sizeTokens: Int, random: inout SeededRandom) -> BenchTask {
        // Mostly labels that never qualify, and a handful of records with the rare one.
        var records = records(sizeTokens: sizeTokens, random: &random)
        let rare = "escalation"
        let special = Int.random(in: 4...7, using: &random)
        var users: Set<Int> = []
        var positions: Set<Int> = []
        for _ in 0..<min(special, records.count) {
            var position = Int.random(in: 0..<records.count, using: &random)
            while positions.contains(position) { position = (position + 1) % records.count }
            positions.insert(position)
            var user = Int.random(in: 1000...9999, using: &random)
            while users.contains(user) { user += 1 }
            users.insert(user)
            records[position] = (user, rare, "Record \(position) | user \(user) | label: \(rare) | \(sentence(&random))\n")
        }
        let sorted = users.sorted()
        var expected: [String] = []
        for (i, a) in sorted.enumerated() { for b in sorted[(i + 1)...] { expected.append("\(a)-\(b)") } }
        return BenchTask(
            id: id, family: .pairs, sizeTokens: sizeTokens, context: records.map(\.line).joined(),
            question: "List every pair of user numbers (a, b) with a < b such that both users have a record labelled '\(rare)'. "
                + "Write each pair as a-b, separated by commas.",
            expected: .pairs(expected))
    }
}

extension String {
    /// A hash that is the same in every process (Swift's `hashValue` is seeded per process).
    var hashValueStable: Int {
        var hash: UInt64 = 1_469_598_103_934_665_603
        for byte in utf8 { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
        return Int(truncatingIfNeeded: hash >> 1)
    }
}

/// Scores an answer against what was expected: 1 or 0, or F1 for pairs.
public enum Scorer {
    public static func score(_ answer: String, expected: BenchTask.Expected) -> Double {
        switch expected {
        case .contains(let text):
            return answer.lowercased().contains(text.lowercased()) ? 1 : 0
        case .choice(let right, let wrong):
            let text = answer.lowercased()
            return text.contains(right.lowercased()) && !text.contains(wrong.lowercased()) ? 1 : 0
        case .integer(let value):
            guard let match = answer.firstMatch(of: /-?\d[\d,]*/) else { return 0 }
            return Int(match.output.replacingOccurrences(of: ",", with: "")) == value ? 1 : 0
        case .pairs(let expected):
            var found: Set<String> = []
            for match in answer.matches(of: /(\d+)\s*[-–,:]\s*(\d+)/) {
                guard let a = Int(match.output.1), let b = Int(match.output.2), a != b else { continue }
                found.insert("\(min(a, b))-\(max(a, b))")
            }
            let truth = Set(expected)
            if truth.isEmpty && found.isEmpty { return 1 }
            let hits = Double(found.intersection(truth).count)
            guard hits > 0 else { return 0 }
            let precision = hits / Double(found.count)
            let recall = hits / Double(truth.count)
            return 2 * precision * recall / (precision + recall)
        }
    }
}
