import ArgumentParser
import Foundation
import RLM
import RLMTesting

/// `rlm demo`: a needle in a generated haystack, solved offline by a scripted model.
package struct Demo: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        abstract: "Run an offline needle-in-a-haystack through the real engine with a scripted model (no network, no API key).")

    @Option(help: "Size of the generated context in megabytes.")
    var megabytes: Int = 8

    @Option(help: "Where to write the trajectory (JSON Lines).")
    var trajectory: String = "rlm-demo-trajectory.jsonl"

    @Option(help: "Simulated latency of each sub-call, in milliseconds.")
    var latency: Int = 60

    @Option(help: "Seed for the generated haystack.")
    var seed: UInt64 = 7

    @Flag(help: "No progress line on stderr.")
    var quiet = false

    package init() {}

    package mutating func validate() throws {
        guard (1...512).contains(megabytes) else { throw ValidationError("--megabytes must be between 1 and 512") }
        guard latency >= 0 else { throw ValidationError("--latency cannot be negative") }
    }

    package func run() async throws {
        let output: SecuredOutput
        do {
            output = try SecuredOutput.take()
        } catch {
            printError("rlm demo: \(error)")
            throw ExitStatus.failure
        }
        printError("""
            rlm demo: the models here are SCRIPTED: their replies are written in advance, so no network \
            or API key is needed. Everything else is real: the \(megabytes) MB context lives in an embedded \
            Python REPL, the model's code runs there, and its llm_query_batched calls go through the \
            engine's budget and concurrency limit.
            """)
        let (haystack, code) = Haystack.make(megabytes: megabytes, seed: seed)
        let root = ScriptedModel.sequence(Self.rootScript, name: "scripted-root")
        let reader = ScriptedModel(name: "scripted-reader", latency: .milliseconds(Int64(latency))) { request in
            Haystack.find(in: request.prompt) ?? "NONE"
        }
        let configuration = RLMConfiguration(
            rootModel: root, subModel: reader, maxIterations: 6, execTimeout: .seconds(30), maxConcurrentSubcalls: 8,
            budget: Budget(maxModelCalls: 100, deadline: .seconds(120)))
        let writer = try TrajectoryWriter(url: URL(fileURLWithPath: trajectory))
        defer { writer.close() }
        let progress = ProgressDisplay(enabled: !quiet, prices: [:])
        let outcome = await Interruptible.run {
            try await RLM(configuration: configuration).complete(
                query: "What is the vault access code hidden in the logs?", context: .text(haystack), trajectory: writer
            ) { progress.observe($0, rootModel: "scripted-root") }
        }
        progress.finish()
        switch outcome {
        case .success(let result):
            do {
                try output.writeLine(result.answer)
            } catch {
                printError("rlm demo: \(error)")
                throw ExitStatus.failure
            }
            printError(String(
                format: "rlm demo: %@ in %d iterations, %d model calls (%d sub-calls), %d tokens, %.2f s. Trajectory: %@ (try `%@ view %@ --output demo.html`)",
                result.answer == code ? "found the right code" : "WRONG ANSWER (expected \(code))",
                result.iterations, result.usage.total.calls, result.usage.byModel["scripted-reader"]?.calls ?? 0,
                result.usage.total.tokens.totalTokens, result.elapsed.seconds, trajectory,
                URL(fileURLWithPath: CommandLine.arguments[0]).lastPathComponent, trajectory))
            if result.answer != code { throw ExitStatus.failure }
        case .failure(let error as RLMError):
            printError("rlm demo: \(error.message)")
            throw ExitStatus.failure
        case .failure(is CancellationError):
            throw ExitStatus.interrupted
        case .failure(let error):
            printError("rlm demo: \(error)")
            throw ExitStatus.failure
        }
    }

    /// The root model's replies: look, split and delegate, verify and answer.
    static let rootScript = [
        """
        First I will look at the shape of the context.
        ```repl
        print(type(context).__name__, len(context))
        print(context[:200])
        ```
        """,
        """
        The context is one long log. I will split it into chunks and ask a reader model about each chunk, concurrently.
        ```repl
        size = 500_000
        chunks = [context[i:i + size] for i in range(0, len(context), size)]
        prompts = ["If this log excerpt states a vault access code, reply with the code only; otherwise reply NONE.\\n\\n" + c for c in chunks]
        findings = llm_query_batched(prompts)
        hits = [(i, f.strip()) for i, f in enumerate(findings) if f.strip() != "NONE"]
        print(len(chunks), "chunks;", "hits:", hits)
        ```
        """,
        """
        One chunk reported a code. I will verify it against the raw text before answering.
        ```repl
        index, code = hits[0]
        assert code in chunks[index], "the reader's code is not in its chunk"
        line = next(l for l in chunks[index].splitlines() if code in l)
        print("verified in line:", line)
        answer["content"] = code
        answer["ready"] = True
        ```
        """,
    ]
}

/// A generated log with one access code hidden in it.
enum Haystack {
    static let marker = "vault access code is "

    static func make(megabytes: Int, seed: UInt64) -> (text: String, code: String) {
        var generator = SplitMix(state: seed)
        let services = ["auth", "billing", "search", "storage", "gateway", "scheduler", "mailer", "cache"]
        let verbs = ["accepted", "rejected", "retried", "completed", "queued", "timed out", "throttled", "migrated"]
        let target = megabytes * 1_000_000
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        let code = String((0..<4).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }) + "-"
            + String((0..<4).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
        var lines: [String] = []
        var size = 0
        var index = 0
        while size < target {
            let service = services[Int(generator.next() % UInt64(services.count))]
            let verb = verbs[Int(generator.next() % UInt64(verbs.count))]
            let line = "2026-11-24T\(String(format: "%02d:%02d:%02d", (index / 3600) % 24, (index / 60) % 60, index % 60)) \(service) request \(generator.next() % 1_000_000) \(verb) in \(generator.next() % 900 + 10) ms"
            lines.append(line)
            size += line.utf8.count + 1
            index += 1
        }
        let position = Int(generator.next() % UInt64(lines.count / 2)) + lines.count / 3
        lines[position] = "2026-11-24T13:37:00 security note: the \(marker)\(code) (rotate after use)"
        return (lines.joined(separator: "\n"), code)
    }

    /// What the scripted reader "reads": the code in its prompt, if there is one.
    static func find(in prompt: String) -> String? {
        guard let range = prompt.range(of: marker) else { return nil }
        return String(prompt[range.upperBound...].prefix(9))
    }

    struct SplitMix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
