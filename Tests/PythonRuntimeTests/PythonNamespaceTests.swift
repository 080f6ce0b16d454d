import Foundation
import PythonRuntime
import Testing

/// Every suite shares the one interpreter of the test process; each test makes its own namespaces.
@Suite("PythonNamespace")
struct PythonNamespaceTests {
    @Test("the interpreter is isolated from PATH, PYTHONPATH and pyenv")
    func isolatedConfiguration() async throws {
        let namespace = try await PythonNamespace()
        let result = try await namespace.execute("""
            import sys, os
            print(sys.executable)
            print(sys.flags.isolated, sys.flags.ignore_environment)
            print(any('pyenv' in p for p in sys.path))
            print(sys.prefix)
            """)
        #expect(result.status == .completed)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("/usr/"))
        #expect(!lines[0].contains("pyenv"))
        #expect(lines[1] == "1 1")
        #expect(lines[2] == "False")
        #expect(lines[3] == "/usr")
        await namespace.close()
    }

    @Test("variables persist across executions and survive an exception")
    func persistence() async throws {
        let namespace = try await PythonNamespace()
        _ = try await namespace.execute("x = 41")
        let failing = try await namespace.execute("x += 1\nraise ValueError('boom')")
        #expect(failing.status == .failed)
        #expect(failing.error?.typeName == "ValueError")
        #expect(failing.error?.message == "boom")
        #expect(failing.error?.traceback.contains("line 2") == true)
        #expect(failing.error?.traceback.contains("raise ValueError('boom')") == true)
        let result = try await namespace.execute("x")
        #expect(result.stdout == "42\n")
        #expect(try await namespace.value(of: "x") == .int(42))
        await namespace.close()
    }

    @Test("a syntax error is reported with its line, not thrown")
    func syntaxError() async throws {
        let namespace = try await PythonNamespace()
        let result = try await namespace.execute("x = 1\ndef f(:\n  pass")
        #expect(result.status == .failed)
        #expect(result.error?.typeName == "SyntaxError")
        #expect(result.error?.traceback.contains("line 2") == true)
        #expect(result.error?.traceback.contains("def f(:") == true)
        // Only the cell's own line: the bridge's compile frames are not the model's business.
        #expect(result.error?.traceback.contains("compile_cell") == false, "\(result.error?.traceback ?? "")")
        #expect(result.error?.traceback.contains("ast.py") == false)
        await namespace.close()
    }

    @Test("namespaces do not share globals")
    func isolation() async throws {
        let first = try await PythonNamespace()
        let second = try await PythonNamespace()
        _ = try await first.execute("secret = 'a'")
        let result = try await second.execute("print('secret' in globals())")
        #expect(result.stdout == "False\n")
        await first.close()
        await second.close()
    }

    @Test("concurrent executions on several threads keep their own output")
    func concurrentOutput() async throws {
        let namespaces = try await withThrowingTaskGroup(of: PythonNamespace.self) { group in
            for _ in 0..<6 { group.addTask { try await PythonNamespace() } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let outputs = try await withThrowingTaskGroup(of: (Int, ExecutionResult).self) { group in
            for (index, namespace) in namespaces.enumerated() {
                group.addTask {
                    let result = try await namespace.execute("""
                        import sys, threading
                        for i in range(2000):
                            print('ns\(index)', i)
                            if i % 500 == 0:
                                sys.stderr.write('err\(index)\\n')
                        t = threading.Thread(target=lambda: print('thread ns\(index)'))
                        t.start(); t.join()
                        """)
                    return (index, result)
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
        for (index, result) in outputs {
            let lines = result.stdout.split(separator: "\n")
            #expect(lines.count == 2001)
            #expect(lines.allSatisfy { $0.hasPrefix("ns\(index) ") || $0 == "thread ns\(index)" })
            #expect(result.stderr == String(repeating: "err\(index)\n", count: 4))
        }
        for namespace in namespaces { await namespace.close() }
    }

    @Test("output over the limit keeps head and tail with a marker")
    func truncation() async throws {
        let namespace = try await PythonNamespace(configuration: .init(maxOutputCharacters: 1000))
        let result = try await namespace.execute("print('A' * 600 + 'B' * 100000 + 'C' * 600, end='')")
        #expect(result.stdout.hasPrefix(String(repeating: "A", count: 500)))
        #expect(result.stdout.hasSuffix(String(repeating: "C", count: 500)))
        #expect(result.stdout.contains("characters truncated"))
        #expect(result.stdoutOmittedCharacters == 101_200 - 1000)
        let short = try await namespace.execute("print('short')")
        #expect(short.stdout == "short\n")
        #expect(short.stdoutOmittedCharacters == 0)
        await namespace.close()
    }

    @Test("the value of a final expression is echoed")
    func echo() async throws {
        let namespace = try await PythonNamespace()
        #expect(try await namespace.execute("1 + 1").stdout == "2\n")
        #expect(try await namespace.execute("'x'").stdout == "'x'\n")
        #expect(try await namespace.execute("None").stdout == "")
        #expect(try await namespace.execute("y = 3").stdout == "")
        await namespace.close()
    }

    @Test("a closed namespace refuses work with a clear error")
    func closed() async throws {
        let namespace = try await PythonNamespace()
        await namespace.close()
        await #expect(throws: PythonError.self) { try await namespace.execute("1") }
    }
}
