import ArgumentParser
import RLMCommandCore

/// `rlm-demo`: the offline demo and the trajectory viewer without the rest of `rlm`, so that a
/// newcomer's first answer needs only the engine, the scripted models and the argument parser
/// built (no HTTP client, TLS or server), in debug, where the tests reuse them.
@main
struct RLMDemoMain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rlm-demo",
        abstract: "The offline demo (a scripted model finds a needle through the real engine) and the trajectory viewer.",
        discussion: "The same commands as `rlm demo` and `rlm view`; build `rlm` for real models, `rlm bench` and `rlm serve`.",
        subcommands: [Demo.self, View.self],
        defaultSubcommand: Demo.self
    )
}
