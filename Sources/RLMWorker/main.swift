// rlm-worker: one REPL in a process that confines itself before any Python runs, for tools that
// use `Isolation.Level.process` without carrying the worker themselves (the `rlm` command carries
// it: see `WorkerProcess`). Started by `PythonWorker`, never by hand.
import PythonRuntime

WorkerProcess.run(arguments: CommandLine.arguments.dropFirst())
