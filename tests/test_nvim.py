"""`hvconf lsp` in a real editor: Debian's Neovim, headless, with the configuration users get
(editors/nvim/hvconf.lua) started by tests/nvim/config.lua. It opens a sample with an error,
waits for the server's diagnostics and writes them to a file this test reads.

Skipped where `nvim` is missing; .ci/run installs Debian's neovim and sets
HVCONF_NVIM_REQUIRED=1, so in CI a missing editor is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def nvim() -> str:
    found = shutil.which("nvim")
    if found is None:
        if os.environ.get("HVCONF_NVIM_REQUIRED"):
            pytest.fail("nvim is missing and HVCONF_NVIM_REQUIRED is set (apt-get install neovim)")
        pytest.skip("nvim is not installed (Debian: apt-get install neovim)")
    return found


def test_neovim_shows_the_servers_diagnostics(tmp_path: Path) -> None:
    editor = nvim()
    pytest.importorskip("pygls", reason="pygls is not installed (pip install '.[lsp]')")
    (tmp_path / "base").mkdir()
    shutil.copy(REPO / "samples" / "base" / "pseries.hv", tmp_path / "base" / "pseries.hv")
    sample = tmp_path / "pseries.hv"
    text = (REPO / "samples" / "pseries.hv").read_text()
    sample.write_text(text.replace("enable  H_RANDOM H_RPT_INVALIDATE", "enable  H_RANDOM H_RTAS"))
    out = tmp_path / "diagnostics.jsonl"
    env = {**os.environ, "HVCONF_NVIM_RUNTIME": str(REPO / "editors" / "nvim"), "HVCONF_NVIM_FILE": str(sample),
           "HVCONF_NVIM_OUT": str(out), "HVCONF_LSP_PYTHON": sys.executable, "XDG_CONFIG_HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([editor, "--headless", "-n", "-i", "NONE", "-u", str(REPO / "tests" / "nvim" / "config.lua")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.is_file(), f"nvim wrote nothing (status {done.returncode}): {done.stderr[-2000:]}"
    # Neovim stops the server (shutdown, exit) before quitting: it must end with status 0.
    assert done.returncode == 0 and "quit with exit code" not in done.stdout + done.stderr, done.stdout + done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and "error" not in rows[0], rows
    line = next(i for i, row in enumerate(sample.read_text().splitlines()) if "H_RTAS" in row)
    col = sample.read_text().splitlines()[line].index("H_RTAS")
    assert [(r["code"], r["lnum"], r["col"], r["source"], r["filetype"]) for r in rows] == [
        ("hcall-not-toggleable", line, col, "hvconf", "hvconf")]
    assert rows[0]["severity"] == 1  # vim.diagnostic.severity.ERROR
    assert "H_RTAS cannot be enabled" in rows[0]["message"]
