import ArgumentParser
import Dispatch
import Foundation
import RLM

/// Checks a context file before a run, with errors that say what is wrong.
package enum ContextFile {
    package static func check(_ path: String) throws -> URL {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw ValidationError("the context file \(path) does not exist")
        }
        guard !isDirectory.boolValue else { throw ValidationError("\(path) is a directory; --context-file takes a text file") }
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw ValidationError("the context file \(path) cannot be read (check its permissions)")
        }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 65_536)) ?? Data()
        if head.contains(0) {
            throw ValidationError("\(path) looks like a binary file (it contains NUL bytes); --context-file takes UTF-8 text")
        }
        return url
    }
}

/// Runs work that Ctrl-C cancels.
package enum Interruptible {
    package static func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async -> Result<T, any Error> {
        let task = Task { try await body() }
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            printError("\nrlm: interrupting…")
            task.cancel()
        }
        source.resume()
        defer {
            source.cancel()
            signal(SIGINT, SIG_DFL)
        }
        do {
            return .success(try await task.value)
        } catch {
            return .failure(error)
        }
    }
}

extension Duration {
    /// The duration in seconds, for printing.
    package var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// What `rlm` prints on stdout.
package enum Output {
    package static func usageObject(_ usage: ModelUsage) -> [String: Any] {
        var object: [String: Any] = [
            "calls": usage.calls, "input_tokens": usage.tokens.inputTokens, "output_tokens": usage.tokens.outputTokens,
            "cached_input_tokens": usage.tokens.cachedInputTokens, "cache_write_input_tokens": usage.tokens.cacheWriteInputTokens, "cost_usd": usage.costUSD,
        ]
        if usage.cacheHits + usage.cacheMisses > 0 {
            object["cache_hits"] = usage.cacheHits
            object["cache_misses"] = usage.cacheMisses
            object["saved_tokens"] = usage.savedTokens.totalTokens
            object["saved_cost_usd"] = usage.savedCostUSD
        }
        return object
    }

    package static func printResult(
        answer: String?, usage: UsageSummary, iterations: Int?, elapsed: Duration, json: Bool, limit: Limit?, complete: Bool = true,
        strategy: Strategy? = nil, to output: SecuredOutput
    ) throws {
        guard json else {
            if let answer { try output.writeLine(answer) }
            return
        }
        var object: [String: Any] = [
            "answer": answer ?? NSNull(),
            "complete": complete,
            "usage": ["total": usageObject(usage.total), "by_model": usage.byModel.mapValues(usageObject)],
            "elapsed_seconds": elapsed.seconds,
            "limit": limit?.rawValue ?? NSNull(),
        ]
        object["iterations"] = iterations ?? NSNull()
        object["strategy"] = strategy?.rawValue ?? NSNull()
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        try output.writeLine(String(decoding: data, as: UTF8.self))
    }
}

/// Writes a line to standard error.
package func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Exit statuses of `rlm`.
package enum ExitStatus {
    /// Bad input, a provider error, a Python failure.
    package static let failure = ExitCode(1)
    /// A limit ended the run before the model answered.
    package static let limitReached = ExitCode(2)
    /// Interrupted (Ctrl-C).
    package static let interrupted = ExitCode(130)
}
