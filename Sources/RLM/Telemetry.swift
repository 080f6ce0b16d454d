import Foundation
import Logging
import Metrics
import Tracing

/// A run's logs, spans and metrics, through swift-log, swift-distributed-tracing and swift-metrics.
///
/// Spans: `rlm.run` › `rlm.node` › `rlm.iteration` › `rlm.cell` › `rlm.subcall`, and a child
/// RLM's `rlm.node` under the cell that started it. The run span nests under whatever span is
/// current where the run was started, and the cell's context is carried into native calls (which
/// start on a Python thread), so a tool's own spans nest under its cell.
///
/// Log metadata: `rlm.run` (an id per run), `rlm.node`, `rlm.depth`, `rlm.iteration`.
///
/// Metrics (dimensions in brackets): `rlm_model_calls_total` [model, depth],
/// `rlm_model_call_errors_total` [model], `rlm_model_call_duration` (timer) [model],
/// `rlm_tokens_total` [model, type: input, output, cached_input, cache_write_input], `rlm_cost_usd_total` [model],
/// `rlm_cells_total` and `rlm_cell_duration` (timer) [status], `rlm_limits_total` [limit],
/// `rlm_runs_total` [outcome: answered, limit, failed, cancelled] and `rlm_run_duration` (timer).
struct Telemetry: Sendable {
    let tracer: any Tracer
    let metrics: any MetricsFactory
    let prices: [String: ModelPrice]
    /// The run's logger, with `rlm.run` set.
    let logger: Logger

    /// Whether metrics go anywhere: with no metrics backend, nothing is created per call.
    let measures: Bool

    init(configuration: RLMConfiguration) {
        tracer = configuration.tracer ?? InstrumentationSystem.tracer
        metrics = configuration.metricsFactory ?? MetricsSystem.factory
        measures = !(metrics is NOOPMetricsHandler)
        prices = configuration.budget.prices
        var logger = configuration.logger
        logger[metadataKey: "rlm.run"] = "\(UUID().uuidString.prefix(8).lowercased())"
        self.logger = logger
    }

    /// The run's logger with a node's metadata.
    func logger(for node: NodeInfo, iteration: Int? = nil) -> Logger {
        var logger = self.logger
        logger[metadataKey: "rlm.node"] = "\(node.id)"
        logger[metadataKey: "rlm.depth"] = "\(node.depth)"
        if let iteration { logger[metadataKey: "rlm.iteration"] = "\(iteration)" }
        return logger
    }

    /// A span that is a child of `context` (the current task's, when `nil`).
    func startSpan(_ name: String, context: ServiceContext? = nil, kind: SpanKind = .internal) -> any Span {
        tracer.startSpan(name, context: context ?? ServiceContext.current ?? .topLevel, ofKind: kind)
    }

    /// Counts one model call and its usage.
    func modelCall(model: String, depth: Int, usage: TokenUsage?, duration: Duration, span: any Span) {
        if span.isRecording {
            span.attributes["gen_ai.request.model"] = model
        }
        if span.isRecording, let usage {
            span.attributes["gen_ai.usage.input_tokens"] = usage.inputTokens
            span.attributes["gen_ai.usage.output_tokens"] = usage.outputTokens
            if let price = prices[model] { span.attributes["rlm.cost_usd"] = price.cost(of: usage) }
        }
        guard measures else { return }
        let calls = Counter(label: "rlm_model_calls_total", dimensions: [("model", model), ("depth", "\(depth)")], factory: metrics)
        calls.increment()
        Timer(label: "rlm_model_call_duration", dimensions: [("model", model)], factory: metrics).recordNanoseconds(duration.nanoseconds)
        guard let usage else {
            Counter(label: "rlm_model_call_errors_total", dimensions: [("model", model)], factory: metrics).increment()
            return
        }
        for (type, tokens) in [("input", usage.inputTokens), ("output", usage.outputTokens), ("cached_input", usage.cachedInputTokens), ("cache_write_input", usage.cacheWriteInputTokens)] where tokens > 0 {
            Counter(label: "rlm_tokens_total", dimensions: [("model", model), ("type", type)], factory: metrics).increment(by: tokens)
        }
        if let price = prices[model] {
            FloatingPointCounter(label: "rlm_cost_usd_total", dimensions: [("model", model)], factory: metrics).increment(by: price.cost(of: usage))
        }
    }

    /// Counts one cache lookup.
    func cacheLookup(model: String, hit: Bool) {
        guard measures else { return }
        Counter(label: "rlm_cache_lookups_total", dimensions: [("model", model), ("result", hit ? "hit" : "miss")], factory: metrics).increment()
    }

    /// Counts one cell.
    func cell(status: RLMEvent.CellStatus, duration: Duration) {
        guard measures else { return }
        Counter(label: "rlm_cells_total", dimensions: [("status", status.rawValue)], factory: metrics).increment()
        Timer(label: "rlm_cell_duration", dimensions: [("status", status.rawValue)], factory: metrics).recordNanoseconds(duration.nanoseconds)
    }

    /// Counts a tripped limit.
    func limit(_ limit: Limit) {
        guard measures else { return }
        Counter(label: "rlm_limits_total", dimensions: [("limit", limit.rawValue)], factory: metrics).increment()
    }

    /// Counts a finished run.
    func run(outcome: String, duration: Duration) {
        guard measures else { return }
        Counter(label: "rlm_runs_total", dimensions: [("outcome", outcome)], factory: metrics).increment()
        Timer(label: "rlm_run_duration", dimensions: [], factory: metrics).recordNanoseconds(duration.nanoseconds)
    }
}

/// What a cell's native calls run under: the cell's span context and a logger with the run,
/// node, depth and iteration. Native calls start on a Python thread, outside the task that ran
/// the cell, so they carry these explicitly.
struct CellScope: Sendable {
    var context: ServiceContext
    var logger: Logger
}

extension Duration {
    /// The whole nanoseconds, for timers.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
