import Synchronization

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

    func emit(_ node: NodeInfo, _ kind: RLMEvent.Kind) {
        let kind = redact.isEmpty ? kind : kind.redacted(by: redact)
        let event = RLMEvent(nodeID: node.id, parentID: node.parentID, depth: node.depth, time: .now - start, kind: kind)
        recorded.withLock { $0.append(event) }
        trajectory?.write(event)
        observer?(event)
        continuation?.yield(event)
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
