/// What the engine says and does beyond the REPL protocol of the paper and its reference
/// implementation, each switchable: notes after cells, refusals, requests for the answer, lenient
/// reading of answers and code, and the prompts' wording.
///
/// The protocol itself (`context`, `llm_query`, `rlm_query`, the `answer` dict, `FINAL`/`FINAL_VAR`,
/// each cell's output, the final-answer request at a limit) is always spoken. An assist helps a
/// model that does not follow it, and must leave a model that does alone: each is triggered only
/// by a departure from the protocol (docs/repl-protocol.md lists what triggers each, its exact
/// text and the run that measured it). Each assist the engine uses in a run is an
/// ``RLMEvent/Kind/assisted(iteration:assist:text:)`` event, and the text it adds is in the
/// messages the trajectory records.
///
/// ```swift
/// configuration.assists = .paper                               // the reference protocol exactly
/// configuration.assists = try Assists(parsing: "default,-repeated-cell")
/// configuration.assists.remove(.answerNow)
/// ```
public struct Assists: Sendable, Hashable, CustomStringConvertible {
    /// One assist.
    public enum Assist: String, CaseIterable, Sendable, Hashable, Codable {
        /// The first message shows the start (and for long text a middle) of `context`
        /// (``RLMConfiguration/contextPreviewCharacters``); the paper's shows only its type and size.
        case contextPreview = "context-preview"
        /// ``Strategy/auto`` may answer without the loop: one direct call, or a scan of a few parts.
        /// Without it `.auto` is the loop, as the paper's method always is.
        case directAnswers = "direct-answers"
        /// A reply with no ```` ```repl ```` block has its ```` ```python ```` blocks run.
        case pythonBlocks = "python-blocks"
        /// A top-level statement that sets `context` to a string written in the cell is left out.
        case pastedContext = "pasted-context"
        /// Answers are read leniently: `FINAL(…)` within a sentence or in any case, quotes taken
        /// off, `FINAL(name)` as the variable `name`, and a bare literal or "Final answer: X" in
        /// reply to a request for the answer. Without it only the paper's forms count: a line
        /// that starts with `FINAL(…)` or `FINAL_VAR(…)`.
        case lenientAnswers = "lenient-answers"
        /// An empty answer, or one of the engine's own placeholders copied back, is refused.
        case refusals
        /// A note after a cell that ran without error and printed nothing, in a turn after one whose
        /// every cell did so too.
        case printedNothing = "printed-nothing"
        /// A note after a cell whose whole output is `0`, `[]`, `{}`, `set()`, `None` or `''`. Not
        /// in the default: a true count of 0 looks the same.
        case foundNothing = "found-nothing"
        /// A note after a cell whose code and output repeat an earlier cell's for the second time
        /// (a failure: the first time).
        case repeatedCell = "repeated-cell"
        /// A note after a reply with neither code nor an answer.
        case noCodeNoAnswer = "no-code-no-answer"
        /// After two turns whose every cell was such a repeat, the next message asks for the answer,
        /// quoting the latest short outputs.
        case answerNow = "answer-now"
        /// A note when the engine restored reserved names a cell rebound (the restoring itself is
        /// the protocol's).
        case restoredNames = "restored-names"
        /// An answer whose numbers (or longer words) no output the model has seen shows is
        /// questioned once (``RLMConfiguration/groundAnswers``). Not in the default.
        case grounding
        /// The engine's own prompts (system prompt, first message, the message after each turn),
        /// which name the `answer` dict and ask for code that reads the whole context. Without it
        /// the prompts follow the paper's layout (docs/repl-protocol.md, "The paper preset").
        case swiftPrompts = "swift-prompts"

        /// The assist's name in ``Assists/init(parsing:)`` and docs/repl-protocol.md.
        public var name: String { rawValue }
    }

    /// The assists in use.
    public private(set) var enabled: Set<Assist>

    /// Uses exactly `enabled`.
    public init(_ enabled: Set<Assist>) {
        self.enabled = enabled
    }

    /// The paper's protocol as its reference implementation speaks it: no assist at all.
    public static let paper = Assists([])
    /// What the measurements on small models justified (docs/accuracy.md), each triggered only by
    /// a departure from the protocol: every assist but ``Assist/grounding`` and
    /// ``Assist/foundNothing`` (a true count of 0 prints what a pattern that misses prints).
    public static let `default` = Assists(Set(Assist.allCases).subtracting([.grounding, .foundNothing]))
    /// Every assist.
    public static let all = Assists(Set(Assist.allCases))

    /// Whether `assist` is in use.
    public func contains(_ assist: Assist) -> Bool { enabled.contains(assist) }

    /// Adds `assist`.
    public mutating func insert(_ assist: Assist) { enabled.insert(assist) }

    /// Removes `assist`.
    public mutating func remove(_ assist: Assist) { enabled.remove(assist) }

    /// Reads a comma-separated list: a preset (`paper`, `default`, `all`; `none` is `paper`) or assist
    /// names, each of which may be `+name` (add) or `-name` (remove). `paper,+printed-nothing`
    /// is the paper's protocol with one note; `default,-refusals` is the default without
    /// refusals; `printed-nothing,repeated-cell` is exactly those two.
    public init(parsing spec: String) throws(RLMError) {
        var set: Set<Assist> = []
        let items = spec.split(separator: ",").map { String($0.filter { !$0.isWhitespace }) }.filter { !$0.isEmpty }
        if items.isEmpty { throw Self.invalid("'\(spec)' names no assists") }
        for item in items {
            switch item {
            case "paper", "none": set = []
            case "default": set = Self.default.enabled
            case "all": set = Set(Assist.allCases)
            default:
                var name = Substring(item)
                let removing = name.first == "-"
                if name.first == "-" || name.first == "+" { name = name.dropFirst() }
                guard let assist = Assist(rawValue: String(name)) else {
                    throw Self.invalid("'\(name)' is not an assist")
                }
                if removing { set.remove(assist) } else { set.insert(assist) }
            }
        }
        self.enabled = set
    }

    private static func invalid(_ problem: String) -> RLMError {
        RLMError(
            code: .invalidConfiguration,
            message: "\(problem): use paper, default, or assist names, each with + or - before it (\(Assist.allCases.map(\.name).joined(separator: ", ")))")
    }

    /// `paper`, `default`, or the preset nearest to it with the differences (`default,-refusals`).
    public var description: String {
        if enabled.isEmpty { return "paper" }
        if enabled == Self.default.enabled { return "default" }
        if enabled == Self.all.enabled { return "all" }
        let ordered = Assist.allCases
        let base = Self.default.enabled
        if enabled.intersection(base).count * 2 >= base.count {
            let removed = ordered.filter { base.contains($0) && !enabled.contains($0) }.map { "-" + $0.name }
            let added = ordered.filter { !base.contains($0) && enabled.contains($0) }.map { "+" + $0.name }
            return (["default"] + removed + added).joined(separator: ",")
        }
        return (["paper"] + ordered.filter { enabled.contains($0) }.map { "+" + $0.name }).joined(separator: ",")
    }
}
