import CPython
import Foundation
import Testing

@testable import PythonRuntime

@Suite("Conversions")
struct ConversionTests {
    /// Converts `value` to Python and back on the namespace's thread.
    func roundTrip(_ value: PythonValue, in namespace: PythonNamespace) async throws -> PythonValue {
        try await namespace.withGIL { gil, _ in try PythonValue(try value.makePythonObject(gil), gil) }
    }

    @Test("JSON-like values survive a round trip")
    func roundTrips() async throws {
        let namespace = try await PythonNamespace()
        let values: [PythonValue] = [
            nil, true, false, 0, -1, .int(Int.max), .int(Int.min), 3.25, -0.5, "",
            "plain", "accents: é à ü ñ", "CJK: 漢字かなカナ", "emoji: 🧵🐍👩‍💻", "nul\u{0}inside",
            .bytes(Data([0, 1, 2, 255, 0])), [], [1, "two", [3.0, nil]],
            ["a": 1, "b": ["nested": [true, "x"]], "é": "ü"],
            .bigInt("123456789012345678901234567890"), .bigInt("-98765432109876543210987654321"),
        ]
        for value in values {
            #expect(try await roundTrip(value, in: namespace) == value)
        }
        await namespace.close()
    }

    @Test("Python sees the right values")
    func pythonSide() async throws {
        let namespace = try await PythonNamespace()
        try await namespace.set("s", to: "naïve 漢字 🐍\u{0}end")
        try await namespace.set("n", to: PythonValue.bigInt("340282366920938463463374607431768211456"))
        try await namespace.set("d", to: ["k": [1, 2]] as PythonValue)
        try await namespace.set("b", to: Data([0, 0x80, 0xFF]))
        let result = try await namespace.execute(
            "print(len(s), s[-4:], s.count('\\x00'))\nprint(n == 2**128)\nprint(d['k'][1])\nprint(list(b))")
        #expect(result.stdout == "14 \u{0}end 1\nTrue\n2\n[0, 128, 255]\n")
        await namespace.close()
    }

    @Test("typed conversions report what went wrong")
    func typedConversions() async throws {
        let namespace = try await PythonNamespace()
        let outcome: [String] = try await namespace.withGIL { gil, globals in
            var messages: [String] = []
            let big = try PythonValue.bigInt("99999999999999999999999").makePythonObject(gil)
            do { _ = try Int(big, gil) } catch let error as PythonError { messages.append(error.message) }
            let text = try "x".makePythonObject(gil)
            do { _ = try Int(text, gil) } catch let error as PythonError { messages.append(error.message) }
            let set = try checked(PyRun_StringFlags("object()", Py_eval_input, globals.pointer, globals.pointer, nil), gil)
            do { _ = try PythonValue(set, gil) } catch let error as PythonError { messages.append(error.message) }
            #expect(try Int(try 7.makePythonObject(gil), gil) == 7)
            #expect(try [String](try ["a", "b"].makePythonObject(gil), gil) == ["a", "b"])
            #expect(try [String: Int](try ["a": 1].makePythonObject(gil), gil) == ["a": 1])
            #expect(try Double(try 2.makePythonObject(gil), gil) == 2.0)
            #expect(try Bool(try true.makePythonObject(gil), gil))
            #expect(try String?(PythonObject.none(gil), gil) == nil)
            return messages
        }
        #expect(outcome == [
            "Python int does not fit in Int",
            "cannot convert a Python str to Int",
            "value is a Python object, which has no JSON-like Swift value",
        ])
        await namespace.close()
    }

    @Test("invalid UTF-8 gets an error that names the byte offset")
    func invalidUTF8() async throws {
        let namespace = try await PythonNamespace()
        var bytes = Data("valid prefix ".utf8)
        bytes.append(contentsOf: [0xC3, 0x28])
        await #expect {
            try await namespace.setString("bad", utf8: bytes)
        } throws: { error in
            guard let error = error as? PythonError else { return false }
            return error.code == .conversion && error.message.contains("position 13")
        }
        try await namespace.setString("good", utf8: Data("ça va 🙂".utf8))
        #expect(try await namespace.value(of: "good") == "ça va 🙂")
        await namespace.close()
    }

    @Test("a file is read straight into a str: ASCII, UTF-8, invalid UTF-8, missing")
    func files() async throws {
        let namespace = try await PythonNamespace()
        let directory = FileManager.default.temporaryDirectory
        let ascii = directory.appendingPathComponent("rlm-ascii-\(UUID().uuidString).txt")
        let utf8 = directory.appendingPathComponent("rlm-utf8-\(UUID().uuidString).txt")
        let invalid = directory.appendingPathComponent("rlm-invalid-\(UUID().uuidString).txt")
        try Data("plain ascii\n".utf8).write(to: ascii)
        try Data("naïve 漢字 🐍".utf8).write(to: utf8)
        try Data([0x61, 0x62, 0xFF, 0x63]).write(to: invalid)
        defer { for url in [ascii, utf8, invalid] { try? FileManager.default.removeItem(at: url) } }
        try await namespace.setString("a", contentsOfFile: ascii.path)
        try await namespace.setString("u", contentsOfFile: utf8.path)
        #expect(try await namespace.value(of: "a") == "plain ascii\n")
        #expect(try await namespace.value(of: "u") == "naïve 漢字 🐍")
        #expect(try await namespace.execute("print(len(u), a.isascii())").stdout == "10 True\n")
        await #expect {
            try await namespace.setString("x", contentsOfFile: invalid.path)
        } throws: { error in
            (error as? PythonError)?.code == .conversion && (error as? PythonError)?.message.contains("position 2") == true
        }
        await #expect {
            try await namespace.setString("x", contentsOfFile: "/nonexistent/file")
        } throws: { error in
            (error as? PythonError)?.message.contains("cannot open /nonexistent/file") == true
        }
        await namespace.close()
    }

    @Test("lone surrogates become U+FFFD instead of failing")
    func loneSurrogates() async throws {
        let namespace = try await PythonNamespace()
        _ = try await namespace.execute("s = 'a\\ud800b'")
        let value = try await namespace.value(of: "s")
        #expect(value?.stringValue?.hasPrefix("a\u{FFFD}") == true)
        #expect(value?.stringValue?.hasSuffix("\u{FFFD}b") == true)
        let printed = try await namespace.execute("print(s)")
        #expect(printed.stdout.hasPrefix("a\u{FFFD}"))
        await namespace.close()
    }

    @Test("a 40 MB ASCII string loads intact")
    func largeString() async throws {
        let namespace = try await PythonNamespace()
        var text = String(repeating: "abcdefghij", count: 4_000_000)
        text += "NEEDLE"
        try await namespace.set("big", to: text)
        let result = try await namespace.execute("print(len(big), big.find('NEEDLE'), big.isascii())")
        #expect(result.stdout == "40000006 40000000 True\n")
        await namespace.close()
    }

    @Test("cyclic containers are refused, not followed forever")
    func cycles() async throws {
        let namespace = try await PythonNamespace()
        _ = try await namespace.execute("a = []\na.append(a)")
        await #expect(throws: PythonError.self) { try await namespace.value(of: "a") }
        await namespace.close()
    }
}
