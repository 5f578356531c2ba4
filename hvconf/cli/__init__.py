"""The `hvconf` command line: argument parsing, exit statuses and printing, nothing else.

main.py is the entry point (`hvconf` and `python -m hvconf`) with check, build, plan, dts,
run and explain; host.py, fmt.py and docs.py add their subcommands; completion.py writes
shell completion scripts. Nothing in hvconf imports this package (tests/test_layering.py).
"""
