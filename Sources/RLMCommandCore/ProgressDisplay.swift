import Foundation
import RLM
import Synchronization

/// A one-line live status on standard error: depth, root iteration, sub-calls in flight and
/// done, tokens, cost and elapsed time. Silent unless stderr is a terminal.
package final class ProgressDisplay: Sendable {
    private struct State {
        var depth = 0
        var iteration = 0
        var inFlight = 0
        var done = 0
        var children = 0
        var tokens = 0
        var cost = 0.0
        var lastDraw = ContinuousClock.now - .seconds(1)
        var drawn = false
    }

    private let enabled: Bool
    private let prices: [String: ModelPrice]
    private let start = ContinuousClock.now
    private let state = Mutex(State())

    package init(enabled: Bool, prices: [String: ModelPrice]) {
        self.enabled = enabled && isatty(STDERR_FILENO) == 1
        self.prices = prices
    }

    package func observe(_ event: RLMEvent, rootModel: String) {
        guard enabled else { return }
        state.withLock { state in
            state.depth = max(state.depth, event.depth)
            switch event.kind {
            case .iterationStarted(let iteration) where event.depth == 0:
                state.iteration = iteration
            case .modelReplied(_, _, let usage, _):
                add(usage, model: event.depth == 0 ? rootModel : nil, to: &state)
            case .subcallStarted:
                state.inFlight += 1
            case .subcallFinished(_, let model, _, let usage, _, _):
                state.inFlight -= 1
                state.done += 1
                add(usage, model: model, to: &state)
            case .childStarted:
                state.children += 1
            default:
                break
            }
            draw(&state, force: false)
        }
    }

    private func add(_ usage: TokenUsage, model: String?, to state: inout State) {
        state.tokens += usage.totalTokens
        if let model, let price = prices[model] { state.cost += price.cost(of: usage) }
    }

    private func draw(_ state: inout State, force: Bool) {
        let now = ContinuousClock.now
        guard force || now - state.lastDraw >= .milliseconds(100) else { return }
        state.lastDraw = now
        state.drawn = true
        let elapsed = (now - start).seconds
        var line = "depth \(state.depth) · iteration \(state.iteration) · sub-calls \(state.inFlight) running, \(state.done) done"
        if state.children > 0 { line += " · \(state.children) child RLMs" }
        line += " · \(state.tokens) tokens"
        if !prices.isEmpty { line += String(format: " · $%.4f", state.cost) }
        line += String(format: " · %.1fs", elapsed)
        FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line).utf8))
    }

    /// Ends the status line.
    package func finish() {
        guard enabled else { return }
        state.withLock { state in
            draw(&state, force: true)
            FileHandle.standardError.write(Data("\n".utf8))
        }
    }
}
