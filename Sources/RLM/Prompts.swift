import Foundation

/// The words the engine says to models. The system prompt is our own; it names the REPL helpers,
/// both answer protocols and the output truncation, as the paper's and the reference's do.
enum Prompts {
    struct SystemPromptInput {
        var contextDescription: String
        var depth: Int
        var maxDepth: Int
        var maxOutputCharacters: Int
        var execTimeoutSeconds: Int
        var modelNames: [String]
        var tools: [(name: String, description: String)]
        var extraInstructions: String?
        var persistent: Bool
        var sandboxed: Bool = false
        /// The sub-model's window, when known: the prompt then says how much one call can read.
        var subcallWindow: ContextWindow?
        /// Whether a context is a mapped file (``RLMContext/mappedFile(_:)``): the prompt then
        /// says what it offers.
        var mappedContext: Bool = false
    }

    static func system(_ input: SystemPromptInput) -> String {
        let childrenAreRLMs = input.depth + 1 < input.maxDepth
        var text = """
            You answer a query about a context that is too large to read at once. The context is not in \
            this conversation: it lives in a Python REPL as the variable `context`, and you work on it by \
            writing code that slices, searches and transforms it, and by asking language models about \
            pieces of it.

            ## The REPL
            Write Python in fenced blocks that open with ```repl and close with ```. Every block in a reply \
            runs in order and you see what it prints. Variables persist across blocks and turns, also \
            after an exception.

            - `context` (also `context_0`): \(input.contextDescription).
            - `llm_query(prompt, model=None) -> str`: asks a language model one question and returns its \
            answer. Use it to read or judge slices of the context; give it all the text it needs.
            - `llm_query_batched(prompts, model=None) -> list[str]`: asks many independent questions \
            concurrently and returns the answers in the same order. A failed slot holds a string that \
            starts with "[error]"; the other slots are unaffected. Prefer it to a loop of `llm_query`.
            """
        if let window = input.subcallWindow {
            // Three characters a token: safe for prose, code and most data.
            text += """

                - One `llm_query` prompt can hold about \(window.promptTokens * 3) characters (the model reads \
                \(window.tokens) tokens at most); split longer text into chunks of that size or less.
                """
        }
        if childrenAreRLMs {
            text += """

                - `rlm_query(prompt, model=None) -> str`: hands a sub-task to a recursive RLM: a new \
                model with its own REPL whose `context` is `prompt`. Use it for sub-tasks that need \
                code of their own. `rlm_query_batched(prompts, model=None) -> list[str]` runs several at once.
                - `llm_query(prompt, depth="auto")` and `llm_query_batched(prompts, depth="auto")` let the \
                engine choose, prompt by prompt, between a plain call and a recursive RLM (for prompts too \
                large or too hard for one call).
                """
        } else {
            text += """

                - `rlm_query(prompt, model=None)` and `rlm_query_batched(prompts, model=None)`: at this \
                depth they are plain model calls, the same as `llm_query` and `llm_query_batched`.
                """
        }
        if input.mappedContext {
            text += """

                - A mapped context is a file too large to load: a read-only, str-like object whose positions \
                are byte offsets. `len(context)`; `context[a:b]` is a str; `context.find(s)`, `.rfind(s)`, \
                `.count(s)`, `s in context`; `context.lines(start, count)` and `context.line_count()`; \
                `context.chunks(size, overlap=0)` yields line-aligned str pieces of about `size` bytes; \
                `context.search(pattern)`, `.finditer(pattern)`, `.findall(pattern)` run a regex over the \
                bytes (matches have str groups and byte positions). It has no other str methods: slice it \
                first. For example: `notes = llm_query_batched([f"List the errors in this log piece:\\n{piece}" \
                for piece in context.chunks(1_000_000)])`; on a big file, send the chunks in waves of a few \
                hundred.
                """
        }
        text += """

            - `SHOW_VARS()`: lists the variables you have created.
            """
        if input.persistent {
            text += """

                - This is a conversation: earlier contexts stay in the REPL as `context_0`, `context_1`, … \
                (`context` is the newest) and `history` holds the earlier queries and answers.
                """
        }
        if !input.modelNames.isEmpty {
            text += "\n- Models you can name with `model=`: " + input.modelNames.map { "\"\($0)\"" }.joined(separator: ", ") + "."
        }
        for tool in input.tools {
            text += "\n- `\(tool.name)`: \(tool.description)"
        }
        text += """


            Output of each block is cut to \(input.maxOutputCharacters) characters (the start and the end \
            are kept, with a marker in between), so print summaries and samples, never the whole context. \
            A block that runs longer than \(input.execTimeoutSeconds) seconds is stopped. The names above \
            are reserved: if you rebind them they are restored after the block.
            """
        if input.sandboxed {
            text += """

                The REPL is sandboxed: no network, no subprocesses, and files can be written only under \
                `tempfile.gettempdir()`. A blocked operation raises PermissionError saying why.
                """
        }
        text += """


            ## Answering
            Submit your answer in one of two ways; either ends the work:
            1. In code: `answer["content"] = <your answer as a string>` then `answer["ready"] = True` \
            (in code, `FINAL(value)` and `FINAL_VAR("name")` do the same).
            2. In your reply, outside any code block, on a line of its own: `FINAL(your answer)`, or \
            `FINAL_VAR(name)` to submit the value of a REPL variable.
            Keep `answer["content"]` up to date with your best answer so far. Submit only when you have \
            checked the answer against the context.

            ## How to work
            Look at the shape of the context first (its type, length, a few samples). Then split it, \
            search it with code, delegate reading to `llm_query_batched` on chunks, keep intermediate \
            results in variables, and verify before you answer. What code can compute exactly, compute \
            with code: when the context has a regular form (records, lines, fields), count, list, \
            filter and compare with Python (`re.findall`, `.count`, a loop over its lines), and \
            ask models only what code cannot judge. When you search, print the whole lines \
            that match, not only the match; print the value you are about to submit, and submit exactly \
            that. Every reply should contain a ```repl block until you submit; an answer you did not get \
            from the REPL is a guess. A first turn could be:
            ```repl
            print(type(context), len(context))
            print(context[:500])
            ```
            """
        if let extra = input.extraInstructions, !extra.isEmpty {
            text += "\n\n" + extra
        }
        return text
    }

    // MARK: - The paper preset (Assists without `swiftPrompts`)
    //
    // The layout of the paper's reference implementation: a system prompt, a first message that
    // says only what `context` is, and for each turn a prompt put after the conversation for that
    // request only; each cell comes back as a message of its own that quotes its code. The words
    // are swift-rlm's, saying what the reference's say (docs/repl-protocol.md, "The paper
    // preset"); a deployment that wants the reference's own text sets
    // ``RLMConfiguration/systemPrompt``.

    /// The system prompt without the engine's assists: the REPL, its functions, and the two ways
    /// to answer in text.
    static func paperSystem(_ input: SystemPromptInput) -> String {
        let childrenAreRLMs = input.depth + 1 < input.maxDepth
        var text = """
            You answer a query about a context. The context is in a Python REPL, where you can read, transform \
            and analyze it, and from which you can query language models about pieces of it; use them as much as \
            you can. You are asked again after every step until you give a final answer.

            The REPL has:
            1. `context`: the information your query is about. Look at it, and look through enough of it to answer.
            2. `llm_query(prompt, model=None)`: one language model call, without a REPL, for reading, extracting \
            or summarizing a piece of text.
            3. `llm_query_batched(prompts, model=None)`: many `llm_query` calls at once; returns the answers in \
            the order of the prompts.
            """
        text += childrenAreRLMs
            ? """

                4. `rlm_query(prompt, model=None)`: a recursive call: a child with a REPL of its own, whose \
                `context` is `prompt`, for sub-tasks that need steps of their own. \
                `rlm_query_batched(prompts, model=None)` starts several.
                """
            : """

                4. `rlm_query(prompt, model=None)` and `rlm_query_batched(prompts, model=None)`: at this depth, \
                the same as `llm_query` and `llm_query_batched`.
                """
        text += """

            5. `SHOW_VARS()`: the variables you have made.
            6. `print()`, to see values. You see each block's output, cut to \(input.maxOutputCharacters) \
            characters: keep large values in variables and hand them to `llm_query`.
            """
        for tool in input.tools {
            text += "\n- `\(tool.name)`: \(tool.description)"
        }
        if input.persistent {
            text += "\nEarlier contexts are `context_0`, `context_1`, … (`context` is the newest) and `history` holds the earlier queries and answers."
        }
        text += """


            Break the problem down: chunk the context, query a model per chunk into variables, and combine the \
            results in code before you answer.

            To run code, write it in a block that opens with ```repl and closes with ```.

            When you are done, and only then, give your final answer in your reply, not in code, on a line that \
            starts with one of:
            1. FINAL(your final answer) for the answer itself;
            2. FINAL_VAR(name) for the value of a REPL variable you assigned in an earlier step.
            """
        if let extra = input.extraInstructions, !extra.isEmpty {
            text += "\n\n" + extra
        }
        return text
    }

    /// The first user message without the engine's assists: what `context` is.
    static func paperFirstMessage(contextDescription: String) -> String {
        "Your context is \(contextDescription)."
    }

    /// The prompt put after the conversation for turn `iteration`'s request only.
    static func paperTurnPrompt(query: String?, iteration: Int) -> String {
        let task = query.map { "to answer the query: \"\($0)\"" } ?? "to carry out the task written in `context`"
        let lead = iteration == 1
            ? "You have not used the REPL or looked at the context yet: look at it before you answer.\n\n"
            : "The conversation above is your work in the REPL so far. "
        return lead + "Think step by step about how to use the REPL, where `context` is, \(task).\n\nGo on in the REPL (```repl blocks) until you know the answer. Your next step:"
    }

    /// A cell as a message of its own, quoting its code.
    static func paperCellMessage(code: String, output: String) -> String {
        "Code executed:\n```python\n\(code)\n```\n\nREPL output:\n\(output)"
    }

    /// The request for an answer at a limit, without the engine's assists.
    static func paperFinalAnswerRequest() -> String {
        "Give your final answer to the query now, from what you have found."
    }

    /// The first user message of a node: the query, what `context` is and, when `preview` is not
    /// empty, how it begins.
    static func firstUserMessage(query: String?, contextDescription: String, preview: REPLEnvironment.ContextPreview = .init()) -> String {
        var shown = preview.start.isEmpty ? "" : "\nIt begins:\n" + fenced(preview.start)
        if let middle = preview.middle {
            // Without its offset: Qwen sliced `context[32107:37694]` from "(at 32107)" and counted there.
            shown += "\nFrom its middle:\n" + fenced(middle)
        }
        guard let query else {
            return """
                Your task is written in `context` (\(contextDescription)).\(shown)
                Read it in the REPL and carry it out; submit the result as your answer.
                """
        }
        if shown.isEmpty {
            return """
                Query: \(query)

                `context` is \(contextDescription). You have not looked at it yet: start by exploring it in the REPL.
                """
        }
        return """
            Query: \(query)

            `context` is \(contextDescription).\(shown)
            \(preview.middle == nil ? "This is only its start" : "These are only samples"): in the REPL, `context` holds all of it. Write code for this form that reads the whole of it.
            """
    }

    static func continueMessage(query: String?) -> String {
        if let query {
            return "Continue with the query: \(query)\n" + submitOrGoOn
        }
        return "Continue with the task in `context`.\n" + submitOrGoOn
    }

    // No code a model could paste: small models copied `answer["ready"] = True or FINAL(...)`
    // into a block, where it is a SyntaxError, turn after turn.
    private static let submitOrGoOn = "If an output above answers it, submit that answer now, the value itself in FINAL(…); if not, write the next ```repl block."

    /// For a reply with neither code nor an answer, quoting the latest short `outputs`: Qwen
    /// wrote what its block "will output" in the reply, then answered from that, turn after
    /// turn, not from what the block printed.
    static func noCodeNoAnswer(outputs: [String] = []) -> String {
        "[your reply had no ```repl block and no FINAL(...) answer: write code to make progress, or submit your answer from what the REPL printed]" + latestOutputs(outputs)
    }

    /// For a block that ran without error and printed nothing: Qwen2.5-Coder-1.5B assigned
    /// `result = count_records(...)` turn after turn and never saw it.
    static func printedNothing(lastAssigned name: String?) -> String {
        "[the block printed nothing: to see a value, print it\(name.map { ", for example print(\($0))" } ?? "")]"
    }

    /// For a block whose whole output says it found nothing (``RLMLoop/emptyResults``).
    static func foundNothing(_ output: String) -> String {
        "[the block printed only `\(output)`: if you expected to find something, the pattern or comparison may not fit the data. Print a few of the lines or values you compared (for example their repr) and check their exact form before you answer]"
    }

    /// For a cell that repeats an earlier one and printed the same: small models rerun a cell
    /// turn after turn instead of submitting what it printed.
    static func repeatedCell(output: String, failed: Bool) -> String {
        if failed {
            return "[you ran this block before and it failed the same way: change the code]"
        }
        let line = output.trimmingCharacters(in: .whitespacesAndNewlines)
        let example = !line.isEmpty && line.count <= 80 && !line.contains("\n") && line != "(no output)" ? ", for example FINAL(\(line))" : ""
        return "[you ran this block before and it printed the same: running it again will not help. If that output answers the query, submit it now\(example); if it does not, write different code]"
    }

    /// `text` in a fence longer than any run of backticks in it, so that it cannot close the fence.
    static func fenced(_ text: String) -> String {
        let longestRun = text.split(whereSeparator: { $0 != "`" }).map(\.count).max() ?? 0
        let fence = String(repeating: "`", count: max(3, longestRun + 1))
        return "\(fence)\n\(text)\n\(fence)"
    }

    /// The user message after turns that re-ran code and showed nothing new
    /// (``RLMLoop/askingForAnswer``): small models that print the answer often re-run the cell
    /// until the limit instead of submitting it, and answer when asked for the answer. `outputs`
    /// are the latest short outputs, quoted so that the answer is in front of the model.
    static func answerNow(query: String?, outputs: [String]) -> String {
        """
            [your last turns re-ran code and showed nothing new: more of the same will not help.]\(latestOutputs(outputs))
            Answer now from what the REPL has shown: FINAL(the answer itself) on a line of its own. Write new code only if \
            no output above answers the query: \(query ?? "the task in `context`")
            """
    }

    /// For an answer whose `missing` tokens the model has seen nowhere (``Grounding``).
    static func ungroundedAnswer(missing: [String]) -> String {
        "[check before answering: \(quotedTokens(missing)) from your answer appears in no REPL output you have seen and not in `context`. Print the evidence for your answer with code, then submit it again (the next submission is taken as it is)]"
    }

    /// For an answer code submitted without any output the model has seen showing its `missing` tokens.
    static func unseenAnswer(missing: [String]) -> String {
        "[check before answering: your code submitted \(quotedTokens(missing)) without any output you have seen showing it. Print it together with its evidence (a few of the lines or matches it comes from), check that they answer the query, then submit again (the next submission is taken as it is)]"
    }

    /// For an answer code submitted as a literal written into it, from a block whose output the
    /// model had not seen (``Grounding/writtenInSubmission(_:blocks:)``).
    static func presetAnswer(_ answer: String) -> String {
        "[check before answering: your code submitted `\(clip(answer, limit: 80))`, written into it before you saw what the block printed. Read the output above: if it shows that answer, submit it again; if it shows another, submit that (the next submission is taken as it is)]"
    }

    private static func quotedTokens(_ tokens: [String]) -> String {
        tokens.prefix(5).map { "`\($0)`" }.joined(separator: ", ")
    }

    static func refusedAnswer(_ problem: String) -> String {
        "[answer refused: \(problem). Put the real answer, found with the REPL, in answer[\"content\"] and set answer[\"ready\"] = True, or write FINAL(the answer)]"
    }

    static func missingFinalVariable(_ name: String) -> String {
        "[FINAL_VAR(\(name)): there is no variable named `\(name)` in the REPL; assign it first, or answer with FINAL(...)]"
    }

    /// The request for a final answer at a limit (``RLMConfiguration/finalAnswerOnLimit``),
    /// quoting the latest short `outputs` as ``answerNow(query:outputs:)`` does: Qwen printed the
    /// right count two turns before the limit, then ran other code, and answered a number its
    /// own prose had made up.
    static func finalAnswerRequest(_ limit: Limit, outputs: [String] = []) -> String {
        """
        The run has reached its \(limit). Give your final answer now, from what the REPL has shown.\(latestOutputs(outputs))
        FINAL(the answer itself) on a line of its own, or FINAL_VAR(name) for a REPL variable that holds it.
        """
    }

    /// " The REPL's latest outputs:" and each of `outputs` fenced, or "" for none.
    private static func latestOutputs(_ outputs: [String]) -> String {
        outputs.isEmpty ? "" : " The REPL's latest output\(outputs.count == 1 ? "" : "s"):\n" + outputs.map(fenced).joined(separator: "\n")
    }

    // MARK: - Refinement (Refinement.swift)

    static func refinementScratch(step: Int, of steps: Int, update: Int, of updates: Int, query: String?, answer: String) -> String {
        """
        [refinement step \(step) of at most \(steps), note \(update) of \(updates)] Before answering again, check your \
        answer. The query: \(query ?? "(in `context`)")
        Your current answer (also the REPL variable `current_answer`):
        \(clip(answer))
        This turn, only work on your notes: test the answer against `context` with code and sub-calls, and add what \
        you find (mistakes, gaps, evidence) to the REPL variable `scratch`, a str that keeps your earlier notes. Do not \
        answer in this turn.
        """
    }

    static func refinementAnswer(step: Int, of steps: Int) -> String {
        """
        [refinement step \(step) of at most \(steps)] Now answer again, improving `current_answer` with what `scratch` \
        says; if it is already right, give it unchanged. Answer as before: FINAL(...), FINAL_VAR(name), or \
        answer['content'] and answer['ready'] = True.
        """
    }

    static func haltingJudge(query: String?, answer: String) -> String {
        """
        A question and a proposed answer follow. How likely is the proposed answer to be correct and complete? \
        Reply with one number between 0 and 1, nothing else.

        Question: \(query ?? "(the task in the context)")
        Proposed answer: \(clip(answer))
        """
    }

    private static func clip(_ text: String, limit: Int = 4_000) -> String {
        text.count <= limit ? text : String(text.prefix(limit)) + " […]"
    }
}
