import Foundation

/// Something that happened in a run, tagged with the RLM node it happened in.
///
/// Nodes form the recursion tree: the root has ``nodeID`` 0 and no parent; a child RLM started
/// by `rlm_query` has its own id and its parent's. A UI or tracer can draw the tree live from
/// the ``RLM/run(query:context:)`` event stream.
///
/// Events are `Codable` (a server can store or forward them) and `Hashable`.
///
/// New kinds of events will be added as the engine grows. Switch over ``Kind`` with a `default:`
/// case for the kinds you do not handle, so that a new kind does not break your build.
public struct RLMEvent: Sendable, Hashable, Codable {
    /// What happened. New cases may be added in any release: give your switches a `default:`.
    public enum Kind: Sendable, Hashable, Codable {
        /// A node started: the root, or a child created by `rlm_query`.
        case nodeStarted(query: String?, context: String)
        /// A model turn began.
        case iterationStarted(iteration: Int)
        /// The engine added a message to the node's conversation (the system prompt, the first
        /// message, each message after a turn), or, when `transient`, put one after the
        /// conversation for this turn's request only (the paper's per-turn prompt). With
        /// ``modelReplied(iteration:text:usage:latency:)`` (the assistant's messages) and
        /// ``historyCompacted(iteration:removedMessages:estimatedTokens:)`` these rebuild every
        /// request the node sent.
        case messageSent(iteration: Int, role: ChatMessage.Role, text: String, transient: Bool)
        /// The engine used an assist (``Assists``): `text` is what it added to the next message.
        case assisted(iteration: Int, assist: Assists.Assist, text: String)
        /// A piece of the root model's reply, as it streams in (see ``RLMConfiguration/streamRootReplies``).
        case modelReplyDelta(iteration: Int, text: String)
        /// The node's model replied.
        case modelReplied(iteration: Int, text: String, usage: TokenUsage, latency: Duration)
        /// A code cell ran.
        case codeExecuted(iteration: Int, cell: Int, code: String, output: String, status: CellStatus, duration: Duration)
        /// A sub-call (`llm_query`, a batched slot, or an `rlm_query` at the depth limit) started.
        case subcallStarted(callID: Int, model: String, prompt: String)
        /// A sub-call finished; ``error`` is set when it failed.
        case subcallFinished(callID: Int, model: String, response: String, usage: TokenUsage, latency: Duration, error: String?)
        /// The sub-call's reply came from the ``ModelCache``: no model was called, and `saved` are
        /// the tokens the first call cost. Its `subcallFinished` follows, with no usage.
        case subcallCached(callID: Int, model: String, saved: TokenUsage)
        /// A child RLM started, as node `childID`.
        case childStarted(childID: Int, prompt: String)
        /// A child RLM finished.
        case childFinished(childID: Int, answer: String?, iterations: Int, latency: Duration, error: String?)
        /// The node's conversation outgrew its model's context window, so its oldest turns were
        /// left out of the prompt from now on (the REPL keeps their variables). `removedMessages`
        /// counts the messages left out this time; `estimatedTokens` is the prompt's estimated
        /// size afterwards (see ``TokenEstimate``).
        case historyCompacted(iteration: Int, removedMessages: Int, estimatedTokens: Int)
        /// A model turn ended without an answer.
        case iterationFinished(iteration: Int)
        /// The node produced its answer.
        case answer(text: String, iterations: Int)
        /// A limit ended the node (for the root: the run).
        case limitReached(limit: Limit, partialAnswer: String?)
        /// The run ended (root only), successfully or not.
        case runFinished(usage: UsageSummary, elapsed: Duration, error: String?)
        /// A refinement step ended with its answer update (``RLMConfiguration/refinement``):
        /// `changed` says whether the answer differs from the step before; `judgeScore` is the
        /// halting judge's probability, when there is a judge.
        case refinementStep(step: Int, answer: String, changed: Bool, judgeScore: Double?)
        /// Refinement ended after `steps` steps, for `reason`.
        case refinementFinished(steps: Int, reason: Refinement.Halt)
        /// The ``SubcallRouter`` (or an explicit `depth`) sent a sub-call to a child RLM
        /// (`recurse`) or to a plain call; `prompt` is its first 200 characters.
        case subcallRouted(prompt: String, recurse: Bool, reason: String, score: Double?)
        /// How the run answers (``Strategy``): `.direct` when the whole context goes to the root
        /// model in one call, `.rlm` for the REPL loop; `reason` says why, for ``Strategy/auto``
        /// also why the direct answer was not kept.
        case strategyChosen(strategy: Strategy, reason: String)
    }

    /// How a code cell ended.
    public enum CellStatus: String, Sendable, Hashable, Codable {
        case completed, failed, timedOut, abandoned
    }

    /// The RLM node the event belongs to.
    public var nodeID: Int
    /// The node's parent, `nil` for the root.
    public var parentID: Int?
    /// The node's depth; the root is 0.
    public var depth: Int
    /// Time since the run started.
    public var time: Duration
    /// What happened.
    public var kind: Kind

    /// Creates an event (for tests, replays and servers that forward events).
    public init(nodeID: Int, parentID: Int?, depth: Int, time: Duration, kind: Kind) {
        self.nodeID = nodeID
        self.parentID = parentID
        self.depth = depth
        self.time = time
        self.kind = kind
    }
}
