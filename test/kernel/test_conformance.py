"""The Jupyter kernel conformance suite (jupyter_kernel_test) against the
installed `distlab` kernelspec, with every sample filled so no test skips."""

import unittest

import jupyter_kernel_test


class DistlabKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "distlab"
    language_name = "typescript"
    file_extension = ".ts"

    code_hello_world = 'console.log("hello, world")'
    code_stderr = 'console.error("something went wrong")'

    completion_samples = [
        {"text": "Math.ma", "matches": {"max"}},
        {"text": "const completionTarget = 1;\ncompletionTar", "matches": {"completionTarget"}},
    ]

    complete_code_samples = ["1 + 2", "let answer = 42;", "function twice(n: number) {\n  return 2 * n;\n}"]
    incomplete_code_samples = ["function twice(n: number) {", "const list = [1, 2,", "if (true) {\n  console.log(1);"]
    invalid_code_samples = ["1 +* 2", "let = ;", ")"]

    # IPython's help syntax: the inspection of `Math` comes back as a page payload.
    code_page_something = "Math?"

    code_generate_error = 'throw new Error("deliberate failure")'

    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": "[1, 2, 3].length", "result": "3"},
        {"code": "({ answer: 42 }).answer + 1", "result": "43"},
    ]
    supported_history_operations = ("tail", "range", "search")
    code_history_pattern = "6*7"

    code_display_data = [
        {"code": 'import * as tslab from "tslab";\ntslab.display.html("<b>bold</b>")', "mime": "text/html"},
        {"code": 'import * as tslab from "tslab";\ntslab.display.markdown("# Title")', "mime": "text/markdown"},
        {
            "code": 'import * as tslab from "tslab";\n'
            "tslab.display.png(new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]))",
            "mime": "image/png",
        },
        {
            "code": 'import * as tslab from "tslab";\ntslab.display.raw("application/json", JSON.stringify({ a: 1 }))',
            "mime": "application/json",
        },
    ]

    code_clear_output = 'import * as distlab from "distlab";\nconsole.log("soon gone");\ndistlab.clearOutput()'

    code_inspect_sample = "Math"


class DistlabIopubWelcomeTests(jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = "distlab"
    support_iopub_welcome = True


if __name__ == "__main__":
    unittest.main()
