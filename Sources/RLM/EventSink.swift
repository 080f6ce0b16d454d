import Synchronization
#if RLM_TSAN_LOCKS
import PythonRuntime  // its SanitizerMutex is this module's Mutex under ThreadSanitizer
#endif

/// Where a run's events go: the run's `AsyncStream`, an optional trajectory file, an optional
/// observer, and the in-memory list returned with the result.
final class EventSink: Sendable {
    private let continuation: AsyncStream<RLMEvent>.Continuation?
    private let trajectory: TrajectoryWriter?
    private let observer: (@Sendable (RLMEvent) -> Void)?
    private let recorded = Mutex<[RLMEvent]>([])
    let start: ContinuousClock.Instant
    /// Applied to every event before anyone sees it.
    let redact: Redactor

    init(
        continuation: AsyncStream<RLMEvent>.Continuation?, trajectory: TrajectoryWriter?,
        observer: (@Sendable (RLMEvent) -> Void)?, start: ContinuousClock.Instant, redact: Redactor
    ) {
        self.redact = redact
        self.continuation = continuation
        self.trajectory = trajectory
        self.observer = observer
        self.start = start
    }

    /// The most characters of a sub-call's or a child's prompt, or a sub-call's response, that
    /// an event keeps: prompts are often slices of a context many megabytes long, and a run
    /// would otherwise hold a copy of each in its events. The trajectory still records the
    /// full length.
    static let maxTextCharacters = 4_000

    /// Events fan out as they happen: the trajectory sees the full texts (it clips them itself
    /// and notes their lengths); the observer, the stream and the result see clipped ones. The
    /// result keeps every event except streamed reply pieces (the whole reply follows in
    /// `modelReplied`).
    func emit(_ node: NodeInfo, _ kind: RLMEvent.Kind) {
        let kind = redact.isEmpty ? kind : kind.redacted(by: redact)
        var event = RLMEvent(nodeID: node.id, parentID: node.parentID, depth: node.depth, time: .now - start, kind: kind)
        trajectory?.write(event)
        event.kind = Self.clipped(event.kind)
        if case .modelReplyDelta = event.kind {} else {
            recorded.withLock { $0.append(event) }
        }
        observer?(event)
        continuation?.yield(event)
    }

    static func clipped(_ kind: RLMEvent.Kind) -> RLMEvent.Kind {
        let limit = maxTextCharacters
        switch kind {
        case .subcallStarted(let callID, let model, let prompt) where prompt.utf8.count > limit:
            return .subcallStarted(callID: callID, model: model, prompt: TrajectoryWriter.clip(prompt, limit))
        case .subcallFinished(let callID, let model, let response, let usage, let latency, let error) where response.utf8.count > limit:
            return .subcallFinished(callID: callID, model: model, response: TrajectoryWriter.clip(response, limit), usage: usage, latency: latency, error: error)
        case .childStarted(let childID, let prompt) where prompt.utf8.count > limit:
            return .childStarted(childID: childID, prompt: TrajectoryWriter.clip(prompt, limit))
        default:
            return kind
        }
    }

    var events: [RLMEvent] { recorded.withLock { $0 } }

    func finish() {
        continuation?.finish()
    }
}

/// Where a node sits in the recursion tree.
struct NodeInfo: Sendable {
    var id: Int
    var parentID: Int?
    var depth: Int
}
