"""`hvconf lsp` over stdio, driven by pygls's LanguageClient as an editor drives it: a real
subprocess (`python -m hvconf lsp`), real JSON-RPC, a real project on disk with an include.

Each test opens buffers whose text differs from the files on disk, so what is asserted is what
the server made of the buffer (unsaved edits), with includes resolved against the file's path.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager

import pytest

if importlib.util.find_spec("pygls") is None:
    pytest.skip("pygls is not installed (pip install '.[lsp]' or '.[test]')", allow_module_level=True)

from lsprotocol import types as lsp  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402

from hvconf.formatter import format_text  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLE = (REPO / "samples" / "pseries.hv").read_text()
BAD = SAMPLE.replace("enable  H_RANDOM H_RPT_INVALIDATE", "enable  H_RANDOM H_RTAS")
TIMEOUT = 60  # seconds for one answer: the shared machine may be slow, a hung server is a failure


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """samples/pseries.hv with its include, as a project of its own."""
    (tmp_path / "base").mkdir()
    shutil.copy(REPO / "samples" / "base" / "pseries.hv", tmp_path / "base" / "pseries.hv")
    (tmp_path / "pseries.hv").write_text(SAMPLE)
    return tmp_path


class Session:
    """A started server, the client, and every publishDiagnostics it sent, by URI."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.published: dict[str, list[lsp.PublishDiagnosticsParams]] = {}
        self.messages: list[str] = []  # window/showMessage, in order
        self.arrived = asyncio.Event()

    def open(self, path: Path, text: str) -> str:
        uri = from_fs_path(str(path)) or ""
        self.client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri=uri, language_id="hvconf", version=1, text=text)))
        return uri

    def change(self, uri: str, text: str, version: int) -> None:
        self.client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
            [lsp.TextDocumentContentChangeWholeDocument(text=text)]))

    async def diagnostics(self, uri: str, count: int = 1) -> list[lsp.Diagnostic]:
        """The diagnostics of the `count`-th publication for `uri`."""
        async def wait() -> None:
            while len(self.published.get(uri, [])) < count:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(wait(), TIMEOUT)
        return list(self.published[uri][count - 1].diagnostics)


async def start(root: Path) -> tuple[LanguageClient, Session]:
    client = LanguageClient("hvconf-test", "1")
    s = Session(client)

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: lsp.PublishDiagnosticsParams) -> None:
        s.published.setdefault(params.uri, []).append(params)
        s.arrived.set()

    @client.feature(lsp.WINDOW_SHOW_MESSAGE)
    def shown(params: lsp.ShowMessageParams) -> None:
        s.messages.append(params.message)

    await client.start_io(sys.executable, "-m", "hvconf", "lsp", cwd=str(root))
    await asyncio.wait_for(client.initialize_async(lsp.InitializeParams(
        capabilities=lsp.ClientCapabilities(), root_uri=from_fs_path(str(root)))), TIMEOUT)
    client.initialized(lsp.InitializedParams())
    return client, s


async def stop(client: LanguageClient) -> None:
    await asyncio.wait_for(client.shutdown_async(None), TIMEOUT)
    client.exit(None)
    await client.stop()


# One server for the module, as an editor keeps one for many files: each test works in its
# own folder, with its own URIs. Starting a server costs seconds (pygls, the knowledge base).
SHARED: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def one_server() -> Iterator[None]:
    SHARED["loop"] = asyncio.new_event_loop()
    try:
        yield
    finally:
        if "client" in SHARED:
            SHARED["loop"].run_until_complete(stop(SHARED.pop("client")))
        SHARED.pop("session", None)
        SHARED.pop("loop").close()


@asynccontextmanager
async def session(root: Path) -> AsyncIterator[Session]:
    """The module's server (started on first use), for a test working in folder `root`."""
    if "session" not in SHARED:
        SHARED["client"], SHARED["session"] = await start(REPO)
    yield SHARED["session"]


def run(scenario: Callable[[], Any]) -> Any:
    return SHARED["loop"].run_until_complete(scenario())


def position_of(text: str, needle: str, offset: int = 0) -> lsp.Position:
    before = text[:text.index(needle) + offset]
    return lsp.Position(before.count("\n"), len(before) - before.rfind("\n") - 1)


def test_diagnostics_follow_the_unsaved_buffer(project: Path) -> None:
    async def scenario() -> None:
        async with session(project) as s:
            uri = s.open(project / "pseries.hv", BAD)
            first = await s.diagnostics(uri)
            assert [d.code for d in first] == ["hcall-not-toggleable"]
            assert first[0].range.start == position_of(BAD, "H_RTAS")
            assert first[0].severity == lsp.DiagnosticSeverity.Error and first[0].source == "hvconf"
            s.change(uri, SAMPLE, 2)
            assert await s.diagnostics(uri, 2) == []
    run(scenario)
    assert (project / "pseries.hv").read_text() == SAMPLE  # nothing was saved


def test_includes_resolve_against_the_buffer_path(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")

    async def scenario() -> None:
        async with session(project) as s:
            here = s.open(project / "pseries.hv", SAMPLE)
            there = s.open(elsewhere / "pseries.hv", SAMPLE)  # a path with no base/ beside it, not on disk
            assert await s.diagnostics(here) == []
            assert "include-not-found" in [d.code for d in await s.diagnostics(there)]
    run(scenario)


def test_positions_count_utf16_code_units(project: Path) -> None:
    text = BAD.replace('cmdline "console=hvc0"', 'cmdline "\U0001F600\U0001F600" hcalls { enable H_RTAS }')

    async def scenario() -> None:
        async with session(project) as s:
            uri = s.open(project / "pseries.hv", text)
            found = [d for d in await s.diagnostics(uri) if d.range.start.line == position_of(text, "\U0001F600").line]
            assert found, "no diagnostic on the line with the emoji"
            line = text.splitlines()[found[0].range.start.line]
            assert found[0].range.start.character == line.index("H_RTAS") + 2  # two astral characters: 2 units each
    run(scenario)


def hover_text(s: Session, uri: str, position: lsp.Position) -> Any:
    return s.client.text_document_hover_async(lsp.HoverParams(lsp.TextDocumentIdentifier(uri), position))


def test_hover_explains_diagnostics_and_names(project: Path) -> None:
    async def scenario() -> dict[str, str]:
        async with session(project) as s:
            uri = s.open(project / "pseries.hv", BAD)
            await s.diagnostics(uri)
            out = {}
            for needle in ("H_RTAS", "H_RANDOM", "KVM_CAP_PPC_SMT", "memory", "hcalls", "vsmt_mode", "liobn",
                           "vio0"):
                answer = await asyncio.wait_for(hover_text(s, uri, position_of(BAD, needle, 1)), TIMEOUT)
                out[needle] = answer.contents.value if answer else ""
            return out
    pages = run(scenario)
    assert "## hcall-not-toggleable" in pages["H_RTAS"]  # the explain page of the error under the cursor
    assert "opcode 0xf000" in pages["H_RTAS"]  # and what the hcall is
    assert "opcode 0x300 (PAPR)" in pages["H_RANDOM"] and "handler: launcher" in pages["H_RANDOM"]
    assert "KVM_ENABLE_CAP on the VM fd" in pages["KVM_CAP_PPC_SMT"] and "vsmt_mode" in pages["KVM_CAP_PPC_SMT"]
    assert "KVM_SET_USER_MEMORY_REGION" in pages["memory"]  # docs/language.md's section
    assert "# fragment:" not in pages["hcalls"]  # the docs' test markers are not shown
    assert "an argument of KVM_CAP_PPC_SMT" in pages["vsmt_mode"] and "args[0], 1..8, a power of two" in pages["vsmt_mode"]
    assert pages["liobn"].startswith("**`tce`** (docs/language.md)")  # a block's property: the block's section
    assert pages["vio0"] == ""  # a name the user chose: nothing to say, no guess


def test_hover_on_presets_and_consoles_uses_the_vms_target(project: Path) -> None:
    text = SAMPLE.replace("    memory 4G\n", "    memory 4G\n    console hvterm\n    hcalls { preset qemu }\n")

    async def scenario() -> list[str]:
        async with session(project) as s:
            uri = s.open(project / "pseries.hv", text)
            await s.diagnostics(uri)
            return [(await asyncio.wait_for(hover_text(s, uri, position_of(text, needle, offset)), TIMEOUT)).contents.value
                    for needle, offset in (("console hvterm", 9), ("preset qemu", 8))]
    console, preset = run(scenario)
    assert "/vdevice/vty@30000000" in console and "*ppc64-spapr*" in console
    assert "*ppc64-spapr, book3s_hv*" in preset and "H_LOGICAL_CI_LOAD" in preset
    assert "book3s_pr" not in preset  # the VM's flavour (HV, from power9_base), not every flavour


def complete(s: Session, uri: str, position: lsp.Position) -> Any:
    return s.client.text_document_completion_async(lsp.CompletionParams(lsp.TextDocumentIdentifier(uri), position))


def test_completion_offers_what_the_target_accepts(project: Path) -> None:
    lines = {"cap": "    cap ", "on": "    cap KVM_CAP_PPC_PAPR on ", "enable": "    hcalls { enable H_",
             "preset": "    hcalls { preset ", "console": "    console ", "statement": "    me",
             "extends": "vm other extends "}

    async def scenario() -> dict[str, set[str]]:
        async with session(project) as s:
            out = {}
            for version, (name, line) in enumerate(lines.items(), 1):
                text = SAMPLE.replace("    memory 4G\n", f"    memory 4G\n{line}\n")
                uri = s.open(project / f"c{version}.hv", text)
                await s.diagnostics(uri)
                answer = await asyncio.wait_for(complete(s, uri, position_of(text, line, len(line))), TIMEOUT)
                out[name] = {item.label for item in answer.items}
            return out
    offered = run(scenario)
    assert "KVM_CAP_PPC_SMT" in offered["cap"] and "KVM_CAP_PPC_PAPR" in offered["cap"]
    assert "KVM_CAP_PPC_ENABLE_HCALL" not in offered["cap"]  # written by the plan from `hcalls`, never by hand
    assert not {c for c in offered["cap"] if c.startswith(("KVM_CAP_X86", "KVM_CAP_S390"))}  # other targets' caps
    assert offered["on"] == {"vcpus", "vcpu"}  # a vCPU cap: never `on vm`
    assert "H_RANDOM" in offered["enable"] and "KVM_HC_KICK_CPU" not in offered["enable"]
    assert offered["preset"] == {"kernel_default", "qemu", "none"}
    assert offered["console"] == {"hvterm", "none"}
    assert "memory" in offered["statement"]
    assert offered["extends"] == {"pseries_base", "power9_base", "linux_base", "pseries"}  # its own VMs and its include's


def test_findings_in_an_included_file_are_shown_at_the_top(project: Path) -> None:
    base = project / "base" / "pseries.hv"
    base.write_text(base.read_text().replace("console hvterm", "console hvterm2"))

    async def scenario() -> list[lsp.Diagnostic]:
        async with session(project) as s:
            return await s.diagnostics(s.open(project / "pseries.hv", SAMPLE))
    found = run(scenario)
    assert found and all(d.range.start == lsp.Position(0, 0) for d in found)
    assert all(d.message.startswith(f"{base}:") or d.message.startswith("base/pseries.hv:") for d in found), found


def test_without_pygls_the_command_says_what_to_install() -> None:
    hide = "import sys; sys.modules['pygls'] = None; from hvconf.cli.main import main; sys.exit(main(['lsp']))"
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("hvconf: error: `hvconf lsp` needs pygls"), done.stderr
    assert "Traceback" not in done.stderr


def jsonrpc(*messages: dict[str, Any]) -> bytes:
    bodies = [json.dumps({"jsonrpc": "2.0", **m}).encode() for m in messages]
    return b"".join(b"Content-Length: %d\r\n\r\n%s" % (len(body), body) for body in bodies)


@pytest.mark.parametrize("shutdown, status", [(True, 0), (False, 1)])
def test_exit_status_follows_the_protocol(tmp_path: Path, shutdown: bool, status: int) -> None:
    """0 after shutdown then exit, 1 for an exit without shutdown; never a traceback."""
    messages = [{"id": 1, "method": "initialize", "params": {"capabilities": {}, "processId": None}},
                {"method": "initialized", "params": {}}]
    messages += [{"id": 2, "method": "shutdown"}] if shutdown else []
    messages += [{"method": "exit"}]
    done = subprocess.run([sys.executable, "-m", "hvconf", "lsp"], input=jsonrpc(*messages), cwd=tmp_path,
                          capture_output=True, timeout=120)
    assert done.returncode == status, done.stderr.decode()
    assert b"Traceback" not in done.stderr and b'"capabilities"' in done.stdout


def test_definition_of_include_and_extends(project: Path) -> None:
    async def scenario() -> list[Any]:
        async with session(project) as s:
            uri = s.open(project / "pseries.hv", SAMPLE)
            await s.diagnostics(uri)
            found = []
            for needle in ('base/pseries.hv"', "power9_base"):
                found.append(await asyncio.wait_for(s.client.text_document_definition_async(
                    lsp.DefinitionParams(lsp.TextDocumentIdentifier(uri), position_of(SAMPLE, needle, 2))), TIMEOUT))
            return found
    include, base = run(scenario)
    target = from_fs_path(str(project / "base" / "pseries.hv"))
    assert include.uri == target
    base_text = (project / "base" / "pseries.hv").read_text()
    assert base.uri == target and base.range.start == position_of(base_text, "power9_base")


def test_formatting_is_hvconf_fmt(project: Path) -> None:
    messy = SAMPLE.replace("    memory 4G\n", "memory     4G\n").replace("    vcpus  8 ", "  vcpus 8")

    async def scenario() -> tuple[Any, Any]:
        async with session(project) as s:
            uri = s.open(project / "pseries.hv", messy)
            options = lsp.FormattingOptions(tab_size=4, insert_spaces=True)
            edits = await asyncio.wait_for(s.client.text_document_formatting_async(
                lsp.DocumentFormattingParams(lsp.TextDocumentIdentifier(uri), options)), TIMEOUT)
            s.change(uri, edits[0].new_text, 2)
            again = await asyncio.wait_for(s.client.text_document_formatting_async(
                lsp.DocumentFormattingParams(lsp.TextDocumentIdentifier(uri), options)), TIMEOUT)
            return edits, again
    edits, again = run(scenario)
    assert len(edits) == 1 and edits[0].new_text == format_text(messy) != messy
    assert edits[0].range.start == lsp.Position(0, 0)
    assert list(again) == []  # formatted text is left alone


def test_code_action_suppresses_a_finding(project: Path) -> None:
    async def scenario() -> tuple[list[lsp.CodeAction], list[lsp.Diagnostic]]:
        async with session(project) as s:
            uri = s.open(project / "pseries.hv", BAD)
            found = await s.diagnostics(uri)
            actions = await asyncio.wait_for(s.client.text_document_code_action_async(lsp.CodeActionParams(
                lsp.TextDocumentIdentifier(uri), found[0].range, lsp.CodeActionContext(diagnostics=found))), TIMEOUT)
            edit = actions[0].edit.changes[uri][0]
            lines = BAD.split("\n")
            lines.insert(edit.range.start.line, edit.new_text.rstrip("\n"))
            s.change(uri, "\n".join(lines), 2)
            return actions, await s.diagnostics(uri, 2)
    actions, after = run(scenario)
    assert [a.title for a in actions] == ["Ignore hcall-not-toggleable here (# hvconf: ignore[hcall-not-toggleable])"]
    assert after == []  # the inserted comment hides the finding, and is used (no unused-suppression)


def apply(text: str, edits: Sequence[lsp.TextEdit]) -> str:
    """`text` with LSP edits applied as an editor applies them: positions in UTF-16 code units."""
    lines = text.split("\n")

    def offset(at: lsp.Position) -> int:
        line = lines[at.line].encode("utf-16-le")[:2 * at.character].decode("utf-16-le")
        return sum(len(x) + 1 for x in lines[:at.line]) + len(line)
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[:offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end):]
    return text


def test_a_findings_fix_is_the_quick_fix_check_fix_applies(project: Path) -> None:
    """A misspelt cap after two astral characters on its line: the code action's edit, applied in
    UTF-16 units, writes what `hvconf check --fix` writes, and the finding is gone."""
    text = SAMPLE.replace("    cap KVM_CAP_PPC_FWNMI  # VM-wide: enabled once, on vCPU 0\n", "").replace(
        'cmdline "console=hvc0"', 'cmdline "\U0001F600\U0001F600" cap KVM_CAP_PPC_FWNMJ')
    saved = project / "typo.hv"
    saved.write_text(text)
    done = subprocess.run([sys.executable, "-m", "hvconf", "check", "--fix", saved.name], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    by_cli = saved.read_text()

    async def scenario() -> Any:
        async with session(project) as s:
            uri = s.open(project / "buffer.hv", text)
            found = await s.diagnostics(uri)
            actions = await asyncio.wait_for(s.client.text_document_code_action_async(lsp.CodeActionParams(
                lsp.TextDocumentIdentifier(uri), found[0].range, lsp.CodeActionContext(diagnostics=found))), TIMEOUT)
            fixed = apply(text, actions[0].edit.changes[uri])
            s.change(uri, fixed, 2)
            return found, actions, await s.diagnostics(uri, 2)
    found, actions, after = run(scenario)
    assert [d.code for d in found] == ["unknown-cap"]
    line = text.split("\n")[found[0].range.start.line]
    assert found[0].range.start.character == line.index("cap KVM") + 2  # two astral characters: 2 units each
    assert [a.title for a in actions] == ["write 'KVM_CAP_PPC_FWNMI'",
                                          "Ignore unknown-cap here (# hvconf: ignore[unknown-cap])"]
    assert actions[0].is_preferred and actions[0].kind == lsp.CodeActionKind.QuickFix
    edit = actions[0].edit.changes[s_uri(project / "buffer.hv")][0]
    assert edit.range.start.character == line.index("KVM_CAP_PPC_FWNMJ") + 2 and edit.new_text == "KVM_CAP_PPC_FWNMI"
    assert apply(text, actions[0].edit.changes[s_uri(project / "buffer.hv")]) == by_cli != text
    assert after == []


def s_uri(path: Path) -> str:
    return from_fs_path(str(path)) or ""


def test_the_project_configuration_applies(project: Path) -> None:
    """hvconf.toml's ignore hides a code in every buffer; per-file-ignores in the buffers it names."""
    async def scenario(config: str) -> dict[str, list[Any]]:
        (project / "hvconf.toml").write_text(config)
        async with session(project) as s:
            out = {}
            for name in ("legacy-a.hv", "new.hv"):
                uri = s.open(project / name, BAD)
                out[name] = [d.code for d in await s.diagnostics(uri, len(s.published.get(uri, [])) + 1)]
            return out
    assert run(lambda: scenario('ignore = ["hcall-not-toggleable"]\n')) == {"legacy-a.hv": [], "new.hv": []}
    assert run(lambda: scenario('[per-file-ignores]\n"legacy-*.hv" = ["hcall-not-toggleable"]\n')) == {
        "legacy-a.hv": [], "new.hv": ["hcall-not-toggleable"]}
    assert run(lambda: scenario('select = ["ALL"]\n')) == {
        "legacy-a.hv": ["hcall-not-toggleable"], "new.hv": ["hcall-not-toggleable"]}


def test_a_bad_configuration_is_a_diagnostic_on_it_not_a_crash(project: Path) -> None:
    """`hvconf check` stops with status 2 on it; the editor shows its diagnostic on the
    configuration file and one message, lints with the defaults, and clears it once fixed."""
    config = project / "hvconf.toml"
    config.write_text('ignore = ["hcall-not-toggleable"]\nwerror = 1\n')
    config_uri = s_uri(config)

    async def scenario() -> Any:
        async with session(project) as s:
            before = len(s.messages)
            uri = s.open(project / "pseries.hv", BAD)
            found = [d.code for d in await s.diagnostics(uri)]
            on_config = list(s.published[config_uri][-1].diagnostics)
            s.change(uri, BAD + "\n", 2)  # the same error again: no second message
            await s.diagnostics(uri, 2)
            messages = s.messages[before:]
            config.write_text('ignore = ["hcall-not-toggleable"]\n')
            s.change(uri, BAD, 3)
            fixed = [d.code for d in await s.diagnostics(uri, 3)]
            return on_config, messages, found, list(s.published[config_uri][-1].diagnostics), fixed, \
                len(s.published[config_uri])
    on_config, messages, found, cleared, fixed, publications = run(scenario)
    assert [(d.code, d.range.start, d.severity) for d in on_config] == [
        ("invalid-config", lsp.Position(1, 0), lsp.DiagnosticSeverity.Error)]
    assert len(messages) == 1 and messages[0].startswith(f"hvconf: {config}:2:1: 'werror' ") and \
        "default settings" in messages[0], messages
    assert found == ["hcall-not-toggleable"]  # the defaults meanwhile: nothing ignored
    assert cleared == [] and fixed == [] and publications == 3
