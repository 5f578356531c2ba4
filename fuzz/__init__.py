"""Fuzzing of the hvconf compiler: input generators, the oracle, a long runner.

cases.py makes inputs (grammar-driven through hypothesis, and mutations of
the samples), oracle.py runs one input through `check` and `build` and says
what went wrong, run.py runs them for N minutes and saves findings to
tests/fuzz_corpus/. Never imported by hvconf. Tested by tests/test_fuzz.py.
"""
