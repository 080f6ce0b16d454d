import ArgumentParser
import Foundation
import PythonRuntime
import RLM
import RLMCommandCore
import RLMProviders

/// `rlm doctor`: what this machine has, and lacks, for each isolation level and optional feature.
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say what this machine has and lacks for each --isolation level and optional feature, and what to do about it.",
        discussion: """
            Starts the embedded interpreter, the in-process sandbox and one confined worker, and \
            checks the model server when --base-url is given. Exits 1 when a run could not work at \
            all (no Python), 0 otherwise; every line that is not "ok" says what to install or set.
            """)

    @Option(help: "Also check this model server (an OpenAI-compatible API root, for example http://127.0.0.1:8397/v1).")
    var baseURL: String?

    @Option(help: "The model name to look up on --base-url (default: the server's only model).")
    var model: String?

    @Option(help: "The environment variable with the API key for --base-url (default OPENAI_API_KEY; its value is never printed).")
    var apiKeyEnv: String?

    /// One line of the report.
    struct Finding {
        enum Verdict: String { case ok, warning = "warn", missing = "MISSING" }
        var topic: String
        var verdict: Verdict
        var detail: String
    }

    func run() async throws {
        var findings: [Finding] = []
        let python = await Self.checkPython()
        findings.append(python)
        if python.verdict == .ok {
            findings.append(await Self.checkSandbox())
            findings.append(await Self.checkWorker())
        }
        findings.append(Finding(topic: "unrestricted", verdict: python.verdict, detail: python.verdict == .ok
            ? "available (--isolation unrestricted: model code has rlm's full authority; only for code you trust)"
            : "needs Python, as above"))
        findings.append(Finding(topic: "sessions (serve)", verdict: .ok, detail: "SQLite built in; PostgreSQL with --store postgres://… (a server of your own)"))
        findings.append(Self.checkKeys())
        if let baseURL { findings.append(await checkServer(baseURL)) }
        print("rlm doctor: \(ProcessInfo.processInfo.operatingSystemVersionString)")
        let width = findings.map(\.topic.count).max() ?? 0
        for finding in findings {
            let topic = finding.topic.padding(toLength: width, withPad: " ", startingAt: 0)
            print("\(topic)  \(finding.verdict.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0))\(finding.detail)")
        }
        if python.verdict != .ok { throw ExitStatus.failure }
    }

    /// The embedded interpreter starts and runs code.
    static func checkPython() async -> Finding {
        do {
            let namespace = try await PythonNamespace(configuration: .init(name: "doctor"))
            defer { Task { await namespace.close() } }
            let result = try await namespace.execute(
                "import sys; print(sys.version.split()[0], sys.prefix)", timeout: .seconds(10))
            guard result.status == .completed else {
                return Finding(topic: "python", verdict: .missing, detail: "the interpreter started but cannot run code: \(result.error?.message ?? result.stderr)")
            }
            let parts = result.stdout.split(separator: " ", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            let library = Python.libraryPath.map { ", \($0)" } ?? ""
            return Finding(topic: "python", verdict: .ok, detail: "embedded CPython \(parts.first ?? "?") (built against \(Python.buildVersion)\(library); standard library under \(parts.last ?? "?"))")
        } catch {
            return Finding(topic: "python", verdict: .missing, detail: "\(error) — install libpython3-dev (Debian/Ubuntu: apt-get install libpython3-dev python3) and rebuild")
        }
    }

    /// `--isolation in-process`: the sandbox refuses a read outside what it allows.
    static func checkSandbox() async -> Finding {
        do {
            let namespace = try await PythonNamespace(configuration: .init(name: "doctor-sandbox", sandbox: PythonSandbox()))
            defer { Task { await namespace.close() } }
            let result = try await namespace.execute("open('/etc/passwd').read()", timeout: .seconds(10))
            if result.status == .failed {
                return Finding(topic: "in-process", verdict: .ok, detail: "the sandbox (audit hook and guards) refuses what it should (the default --isolation)")
            }
            return Finding(topic: "in-process", verdict: .missing, detail: "the sandbox let code read /etc/passwd; use --isolation process")
        } catch {
            return Finding(topic: "in-process", verdict: .missing, detail: "the sandbox did not start: \(error)")
        }
    }

    /// `--isolation process`: one worker starts, and the layers it could not apply are named.
    static func checkWorker() async -> Finding {
        let executable = PythonWorker.defaultExecutable
        let carried = WorkerProcess.hostsWorkers ? "carried by rlm" : executable
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("rlm-doctor-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        do {
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            let started = ContinuousClock.now
            let worker = try await PythonWorker.start(configuration: .init(scratch: scratch.path))
            let elapsed = ContinuousClock.now - started
            await worker.close()
            let time = "started in \(Int((elapsed.seconds * 1000).rounded())) ms"
            guard worker.missingLayers.isEmpty else {
                return Finding(topic: "process", verdict: .warning, detail: """
                    worker (\(carried)) \(time) without \(worker.missingLayers.joined(separator: ", ")): \
                    it runs with the other layers, --require-all-layers refuses. \(Self.advice(for: worker.missingLayers))
                    """)
            }
            return Finding(topic: "process", verdict: .ok, detail: "worker (\(carried)) \(time), with every layer: namespaces, Landlock, seccomp, limits")
        } catch {
            return Finding(topic: "process", verdict: .missing, detail: "\(error) — needs Linux with unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
        }
    }

    static func advice(for missing: [String]) -> String {
        var advice: [String] = []
        if missing.contains(where: { $0.contains("namespace") }) {
            advice.append("User namespaces: sysctl kernel.unprivileged_userns_clone=1 (Debian) or kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu 24.04).")
        }
        if missing.contains(where: { $0.hasPrefix("Landlock") }) { advice.append("Landlock: a kernel of 6.7 or later with lsm=landlock.") }
        if missing.contains("seccomp") { advice.append("seccomp: a kernel built with CONFIG_SECCOMP_FILTER.") }
        return advice.joined(separator: " ")
    }

    /// Which API keys the environment holds (never their values).
    static func checkKeys() -> Finding {
        let environment = ProcessInfo.processInfo.environment
        let set = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"].filter { !(environment[$0] ?? "").isEmpty }
        if set.isEmpty {
            return Finding(topic: "API keys", verdict: .warning, detail: "neither OPENAI_API_KEY nor ANTHROPIC_API_KEY is set: only local servers (and rlm demo) work; --api-key-env names another")
        }
        return Finding(topic: "API keys", verdict: .ok, detail: "\(set.joined(separator: " and ")) set")
    }

    /// The model server at `--base-url` answers its model list.
    func checkServer(_ baseURL: String) async -> Finding {
        do {
            let model = try OpenAICompatibleModel(configuration: .init(baseURL: baseURL, model: model ?? "", apiKeyVariable: apiKeyEnv ?? "OPENAI_API_KEY"))
            let window = try await model.discoverContextWindow(timeout: .seconds(5))
            return Finding(topic: "model server", verdict: .ok, detail: "\(baseURL) answers; window \(window.map { "\($0.tokens) tokens" } ?? "not reported (give --context-window)")")
        } catch {
            return Finding(topic: "model server", verdict: .missing, detail: "\(baseURL): \(error)")
        }
    }
}
