"""`hvconf lsp`: a Language Server Protocol server for .hv files, on pygls and lsprotocol.

- buffers.py: lint an editor's unsaved text as if it were saved at its path (the one place that
  calls the compiler on text),
- knowledge.py: what hover and completion say about caps, hcalls, presets, consoles and
  keywords, from the target knowledge base (targets/) and docs/language.md,
- cursor.py: what is under or before the cursor (words, the enclosing VM, include strings),
- server.py: the protocol features, diagnostics as the user types, hover, completion,
  definition, formatting and code actions.

pygls is an optional dependency (the `lsp` extra): only `hvconf lsp` imports this package.
Tested by tests/test_lsp.py (a JSON-RPC client over stdio) and tests/test_nvim.py (Neovim).
"""
