"""The lint and report side: what `hvconf check` adds around the compiler's `check`.

driver.py finds the files, runs the compiler over them (in parallel with --jobs) and
filters by code; render.py draws a diagnostic with its source line and caret; formats/
are the output formats (text, json, sarif, github); progress.py the progress bar;
explain.py the `hvconf explain` pages and docs/diagnostics.md. The compiler's packages
never import this one (tests/test_layering.py).
"""
