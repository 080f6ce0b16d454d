import ArgumentParser
import Foundation

/// The `rlm` command: run Recursive Language Models, try the offline demo, view trajectories.
@main
struct RLMMain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rlm",
        abstract: "Recursive Language Models: answer queries over contexts far larger than a model's window.",
        discussion: """
            The context is held in an embedded Python REPL; the model writes code to inspect it and \
            calls models (and itself) on pieces of it. stdout carries only the result; progress and \
            errors go to stderr.
            """,
        subcommands: [Run.self, Bench.self, Serve.self, MCP.self, Demo.self, View.self]
    )
}

/// Writes a line to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Exit statuses of `rlm`.
enum ExitStatus {
    /// Bad input, a provider error, a Python failure.
    static let failure = ExitCode(1)
    /// A limit ended the run before the model answered.
    static let limitReached = ExitCode(2)
    /// Interrupted (Ctrl-C).
    static let interrupted = ExitCode(130)
}
