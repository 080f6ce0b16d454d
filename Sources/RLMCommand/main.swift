import ArgumentParser
import Dispatch
import Foundation
import PythonRuntime

// `rlm` carries its own worker for `--isolation process`: started as one, it becomes the worker
// here, before any thread starts (a worker forks while it confines itself), and never returns.
WorkerProcess.hostIfRequested()

Task {
    await RLMMain.main()
    exit(0)
}
dispatchMain()
