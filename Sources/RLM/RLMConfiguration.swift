import Logging
import Metrics
import PythonRuntime
import Tracing

/// How an ``RLM`` runs. Every field has a documented default.
///
/// ```swift
/// var configuration = RLMConfiguration(rootModel: gpt)
/// configuration.subModel = gptMini
/// configuration.maxDepth = 2
/// configuration.budget = Budget(maxModelCalls: 200, deadline: .seconds(600))
/// ```
public struct RLMConfiguration: Sendable {
    /// The model that drives the REPL loop at every depth.
    public var rootModel: any LanguageModel
    /// The model behind `llm_query` and `llm_query_batched`. Defaults to `nil`: the root model.
    public var subModel: (any LanguageModel)?
    /// Models that `llm_query(prompt, model="name")` and `rlm_query(prompt, model="name")` may
    /// pick, by name. Defaults to none.
    public var models: [String: any LanguageModel]
    /// How many RLM levels the tree may have; the root is depth 0. With 1 (the default) only the
    /// root is an RLM and `rlm_query` is a plain model call; with 2 the root's children are RLMs.
    public var maxDepth: Int
    /// Model turns one RLM node may take. Defaults to 30.
    public var maxIterations: Int
    /// How long one code cell may run before it is stopped (the model is told). Defaults to 60 s.
    public var execTimeout: Duration
    /// The most characters of output per cell shown to the model; the middle of longer output is
    /// cut. Defaults to 20,000.
    public var maxOutputCharacters: Int
    /// The most model calls in flight at once across the whole tree, not counting the root
    /// node's own turns. Defaults to 16.
    public var maxConcurrentSubcalls: Int
    /// The most child RLMs one `rlm_query_batched` call runs at once; the others start as those
    /// finish. Each child holds a REPL (and an OS thread while its code runs), so this bounds a
    /// 1,000-prompt batch. It applies per call, so a child's own batch never waits for its
    /// parent's slots (no deadlock across depths). Defaults to 8.
    public var maxConcurrentChildren: Int = 8
    /// Refines the root's answer after it first answers (see ``Refinement``). Defaults to `nil`:
    /// the first answer is the result.
    public var refinement: Refinement?
    /// Decides where `llm_query(p, depth="auto")` goes: a plain call or a child RLM (see
    /// ``SubcallRouter``). Defaults to ``WindowRouter``: a child only for prompts that cannot fit
    /// the sub-model's window.
    public var subcallRouter: any SubcallRouter = WindowRouter()
    /// Limits for the whole tree. Defaults to ``Budget/unlimited``.
    public var budget: Budget
    /// When a limit is reached, ask the root model once more (one call past the budget) for a
    /// final answer instead of failing; the result has ``RLMResult/answeredAfterLimit`` set.
    /// Does not apply to the deadline or to cancellation. Defaults to `true`, as the reference
    /// implementation asks for a default answer when its iterations run out; set `false` to
    /// fail with the limit instead.
    public var finalAnswerOnLimit: Bool
    /// How runs answer (``Strategy``): by default `.auto`, one direct call when the whole
    /// context fits well inside the root model's window and no refinement or tools are set, the
    /// RLM loop otherwise. Sessions always use the loop.
    public var strategy: Strategy = .auto
    /// The most parts ``Strategy/auto`` reads one direct call each before a context is the
    /// loop's (the scan; see ``Strategy/auto``). Each part is half the root model's window, so
    /// the default of 6 covers about three windows. `0` turns the scan off. A run whose
    /// ``Budget/maxModelCalls`` is under twice the parts skips the scan, so that the loop keeps
    /// calls if the scan hands over.
    public var maxScanParts: Int = 6
    /// The most tokens (estimated) of context that ``Strategy/auto`` answers without the RLM
    /// loop, with one direct call or a scan; a larger context goes to the loop whatever the root
    /// model's window. Defaults to 16,384 (2^14): in the paper's Figure 1, GPT-5's scores on
    /// OOLONG and OOLONG-Pairs fall from about there (its window is 272K), while RLM(GPT-5)'s
    /// hold; and with Qwen2.5-Coder-1.5B (16K window) direct counts over about 4K tokens were
    /// all wrong (docs/accuracy.md). Information-dense work rots long before a window is full,
    /// so a window alone never sends a context past this to one call. `0` sends every context
    /// to the loop.
    public var maxDirectTokens: Int = 16_384
    /// Asks the direct call and the scan's calls (``Strategy/auto``, ``Strategy/direct``) for a
    /// JSON reply, `{"quote": …, "answer": …}`: the sentence of the context that answers, copied,
    /// then the answer. The engine takes the answer only when the quote is in the text the call
    /// read and holds it, and an answer of `NONE` hands the question to the loop. Servers that
    /// constrain replies to a schema (``LanguageModel/complete(_:schema:)``) make small models
    /// keep the format; a reply that is not the JSON asked for is read as text. Off by default.
    public var structuredOutput: Bool = false
    /// Questions an answer once when it is not grounded: when some of its numbers (or, without
    /// numbers, its longer words) appear neither in any REPL output the model has seen nor in
    /// `context`, the model is asked to print the evidence and submit again; the next
    /// submission is taken as it is. An answer that code submitted must be in an output the
    /// model has seen: that the context holds it somewhere is not enough. Small models submit values they made up; large ones rarely
    /// do, and a computed answer they did not print costs them a turn. Off by default; the same switch as ``Assists/Assist/grounding``.
    public var groundAnswers: Bool {
        get { assists.contains(.grounding) }
        set { if newValue { assists.insert(.grounding) } else { assists.remove(.grounding) } }
    }
    /// How many characters of `context` the first message of each RLM node shows (a str's
    /// start, or a clipped `repr`), so that the model's first code fits the context's real form
    /// instead of a guessed one; the model still reads the rest in the REPL. `0` shows none, as
    /// the paper's prompt does. Defaults to 500.
    public var contextPreviewCharacters: Int = 500
    /// What the engine says and does beyond the paper's protocol (``Assists``): notes after
    /// cells, refusals, requests for the answer, lenient reading, direct answers and its own
    /// prompts. Defaults to ``Assists/default``, every assist; ``Assists/paper`` is the reference
    /// protocol exactly.
    public var assists: Assists = .default
    /// Swift functions offered to the model as Python functions. Defaults to none.
    public var tools: [RLMTool]
    /// A system prompt used instead of the engine's (either preset of ``assists``), for a
    /// deployment with its own wording, or the reference implementation's text. Defaults to `nil`.
    public var systemPrompt: String?
    /// Extra instructions appended to the system prompt. Defaults to `nil`.
    public var extraInstructions: String?
    /// Stream the root model's replies into the event stream as ``RLMEvent/Kind/modelReplyDelta(iteration:text:)``
    /// events while they arrive (for models that stream). Defaults to `false`.
    public var streamRootReplies: Bool = false
    /// How long a stopped cell may take to return before its REPL is abandoned (the code is in a
    /// long C-level call), or, with ``Isolation/process``, its worker killed. The run then goes on
    /// in a fresh REPL with the context bound again, and the model is told its variables are
    /// lost. Defaults to 5 s: on a loaded host a stop that works still waits for a core.
    public var stopGracePeriod: Duration = .seconds(5)
    /// How model-written code is confined. Defaults to ``Isolation/inProcess``: the REPL runs
    /// sandboxed in this process, with a scratch directory of its own.
    public var isolation: Isolation = .inProcess
    /// Replies to repeated sub-calls (and, if it says so, root turns) answered from a cache
    /// instead of the model; see ``ModelCache``. Defaults to `nil`: every call goes to the model.
    public var cache: ModelCache?
    /// Strings that must never appear in what the run produces: they are replaced with
    /// `[redacted]` in cell output shown to the model, sub-call prompts, events, trajectories and
    /// answers. The API keys of the configured models (``LanguageModel/secrets``) are added
    /// automatically. Defaults to none.
    public var secrets: [String] = []
    /// A limit on model calls shared with other runs (in-flight calls and a token rate), for a
    /// server that caps each provider across all tenants. Defaults to `nil`: only this run's own
    /// limits apply.
    public var callLimiter: ModelCallLimiter?
    /// Where the engine logs: runs, turns, cells and sub-calls, with `rlm.run`, `rlm.node`,
    /// `rlm.depth` and `rlm.iteration` metadata. Defaults to a logger that discards everything.
    public var logger: Logger = Logger(label: "rlm", factory: { _ in SwiftLogNoOpLogHandler() })
    /// The tracer for the run's spans (`rlm.run`, `rlm.node`, `rlm.iteration`, `rlm.cell`,
    /// `rlm.subcall`). Defaults to `nil`: the bootstrapped `InstrumentationSystem.tracer`.
    public var tracer: (any Tracer)?
    /// Where the run's metrics go. Defaults to `nil`: the bootstrapped `MetricsSystem.factory`.
    public var metricsFactory: (any MetricsFactory)?
    /// Who this run's calls wait as in ``callLimiter``: runs with the same key share one turn in
    /// its round-robin (a tenant's id, say). Defaults to `nil`: each run is its own client.
    public var limiterKey: String?

    /// Creates a configuration with the defaults above.
    public init(
        rootModel: any LanguageModel,
        subModel: (any LanguageModel)? = nil,
        models: [String: any LanguageModel] = [:],
        maxDepth: Int = 1,
        maxIterations: Int = 30,
        execTimeout: Duration = .seconds(60),
        maxOutputCharacters: Int = 20_000,
        maxConcurrentSubcalls: Int = 16,
        budget: Budget = .unlimited,
        finalAnswerOnLimit: Bool = true,
        tools: [RLMTool] = [],
        extraInstructions: String? = nil,
        strategy: Strategy = .auto
    ) {
        self.rootModel = rootModel
        self.subModel = subModel
        self.models = models
        self.maxDepth = maxDepth
        self.maxIterations = maxIterations
        self.execTimeout = execTimeout
        self.maxOutputCharacters = maxOutputCharacters
        self.maxConcurrentSubcalls = maxConcurrentSubcalls
        self.budget = budget
        self.finalAnswerOnLimit = finalAnswerOnLimit
        self.tools = tools
        self.extraInstructions = extraInstructions
        self.strategy = strategy
    }

    /// Checks that the numbers make sense.
    func validate() throws(RLMError) {
        func invalid(_ message: String) -> RLMError { RLMError(code: .invalidConfiguration, message: message) }
        if maxDepth < 1 { throw invalid("maxDepth must be at least 1 (got \(maxDepth))") }
        if maxIterations < 1 { throw invalid("maxIterations must be at least 1 (got \(maxIterations))") }
        if maxScanParts < 0 { throw invalid("maxScanParts must be 0 (no scan) or more (got \(maxScanParts))") }
        if maxDirectTokens < 0 { throw invalid("maxDirectTokens must be 0 (always the loop) or more (got \(maxDirectTokens))") }
        if maxConcurrentChildren < 1 { throw invalid("maxConcurrentChildren must be at least 1 (got \(maxConcurrentChildren))") }
        if maxConcurrentSubcalls < 1 { throw invalid("maxConcurrentSubcalls must be at least 1 (got \(maxConcurrentSubcalls))") }
        if contextPreviewCharacters < 0 { throw invalid("contextPreviewCharacters must be 0 (no preview) or more (got \(contextPreviewCharacters))") }
        if maxOutputCharacters < 100 { throw invalid("maxOutputCharacters must be at least 100 (got \(maxOutputCharacters))") }
        if execTimeout <= .zero { throw invalid("execTimeout must be positive") }
        if stopGracePeriod <= .zero { throw invalid("stopGracePeriod must be positive") }
        try refinement?.validate()
        if isolation.level == .process && isolation.allowsNetwork {
            throw invalid("isolation.allowsNetwork is not available with process isolation: its workers have no network")
        }
        let reserved = Set(REPLEnvironment.reservedNames)
        for tool in tools where reserved.contains(tool.name) || !tool.name.isPythonIdentifier {
            throw invalid("tool name '\(tool.name)' is not a free Python identifier")
        }
    }
}

/// A Swift function offered to the model as a Python function in the REPL, and listed with its
/// description in the system prompt.
///
/// ```swift
/// let lookup = RLMTool(name: "lookup", description: "lookup(key) -> str: reads the key-value store") { arguments in
///     .string(store[arguments.positional.first?.stringValue ?? ""] ?? "")
/// }
/// ```
public struct RLMTool: Sendable {
    /// The Python name.
    public var name: String
    /// What it does and how to call it, shown to the model.
    public var description: String
    /// The body; async work runs while the Python thread waits with the GIL released.
    public var body: @Sendable (PythonArguments) async throws -> PythonValue

    /// Creates a tool.
    public init(name: String, description: String, body: @escaping @Sendable (PythonArguments) async throws -> PythonValue) {
        self.name = name
        self.description = description
        self.body = body
    }
}

extension String {
    var isPythonIdentifier: Bool {
        guard let first = unicodeScalars.first, first == "_" || first.properties.isXIDStart else { return false }
        return unicodeScalars.dropFirst().allSatisfy { $0 == "_" || $0.properties.isXIDContinue }
    }
}
