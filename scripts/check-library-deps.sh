#!/usr/bin/env bash
# What a Swift tool that imports the library builds: a throwaway package that depends on this one
# by path and uses the products a tool imports (RLM, RLMProviders, RLMTesting). Fails when that
# build compiles any of the server's dependencies (Hummingbird, PostgresNIO, SQLiteNIO, the MCP
# SDK, ServiceLifecycle) or the command's. Prints what it resolved and what it built.
#
#   bash scripts/check-library-deps.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
# A dependency by path is named after its directory.
identity="$(basename "$root" | tr "[:upper:]" "[:lower:]")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/Sources/Tool"
cat > "$work/Package.swift" <<SWIFT
// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "Tool",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "$root")],
    targets: [
        .executableTarget(name: "Tool", dependencies: [
            .product(name: "RLM", package: "$identity"),
            .product(name: "RLMProviders", package: "$identity"),
            .product(name: "RLMTesting", package: "$identity"),
        ]),
    ]
)
SWIFT
cat > "$work/Sources/Tool/main.swift" <<'SWIFT'
import RLM
import RLMProviders
import RLMTesting

let model = ScriptedModel.sequence(["```repl\nanswer['content'] = str(len(context)); answer['ready'] = True\n```"])
let result = try await RLM(configuration: RLMConfiguration(rootModel: model)).complete(query: "How long?", context: .text("12345"))
print(result.answer)
_ = OpenAICompatibleModel.self
SWIFT
cd "$work"
# Reuse this machine's clones instead of fetching again.
swift package resolve >/dev/null
echo "resolved (SwiftPM resolves every package in swift-rlm's manifest, built or not):"
swift package show-dependencies --format flatlist 2>/dev/null | sort -u | tr '\n' ' ' | fold -s -w 100 | sed 's/^/  /' || true
echo
swift build --product Tool 2>&1 | grep -E "error|warning: .*Sources/(RLM|PythonRuntime)" || true
built="$(find .build/debug/Modules .build/debug -maxdepth 1 -name '*.swiftmodule' -printf '%f\n' 2>/dev/null | sed 's/\.swiftmodule$//' | sort -u)"
echo "built modules:"
echo "$built" | tr '\n' ' ' | fold -s -w 100 | sed 's/^/  /'
echo
answer="$(.build/debug/Tool)"
[ "$answer" = "5" ] || { echo "the tool answered '$answer', not 5" >&2; exit 1; }
unwanted="$(echo "$built" | grep -E '^(Hummingbird|HummingbirdCore|PostgresNIO|SQLiteNIO|MCP|ServiceLifecycle|RLMServer|RLMCommandCore|RLMBench|ArgumentParser)$' || true)"
if [ -n "$unwanted" ]; then
    echo "a library user builds what only the server or the command needs: $(echo $unwanted)" >&2
    exit 1
fi
echo "ok: a tool importing RLM, RLMProviders and RLMTesting builds none of the server's or the command's modules, and runs"
