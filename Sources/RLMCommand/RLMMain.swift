import ArgumentParser
import Foundation
import RLMCommandCore

/// The `rlm` command: run Recursive Language Models, try the offline demo, view trajectories.
struct RLMMain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rlm",
        abstract: "Recursive Language Models: answer queries over contexts far larger than a model's window.",
        discussion: """
            The context is held in an embedded Python REPL; the model writes code to inspect it and \
            calls models (and itself) on pieces of it. stdout carries only the result; progress and \
            errors go to stderr.
            """,
        subcommands: [Run.self, Bench.self, Serve.self, MCP.self, Demo.self, View.self, Doctor.self]
    )
}
