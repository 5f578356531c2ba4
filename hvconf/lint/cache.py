"""The lint cache: what `hvconf check` found in a file, kept until the file or anything it reads changes.

Like ruff's cache, one entry per root file, keyed by everything its findings
depend on:

- the run: hvconf's version and a fingerprint of its own code and data (the
  size and mtime of every file of the package, the grammar and the targets'
  tables), the options that change findings (--root, --allow-path, the host
  facts), the working directory (diagnostics show paths relative to it);
- the file: its absolute path and its project (hvconf/syntax/paths.py scope);
- what it read, recorded when it was checked: every file it includes and every
  `include` that failed (real path and SHA-256 of a .hv file; real path and
  stat of a `guest` or `kernel` file and of what a guest source's
  `.include`/`.incbin` read; the errno of a path that failed), checked again
  at every lookup.

An entry holds the file's findings before suppressions (the driver applies
`# hvconf: ignore` comments once, to the merged report), the text of the .hv
files they point into and the statement spans of files that carry `hvconf`
comments, so a hit costs no parsing, no lowering and no validation: the
parser (lark) and the models (pydantic) are not even imported. It stores no
byte of any file but a .hv file's text (a guest or kernel is known by its
stat only, and a root that is not a .hv file is never cached).

Where: the user's cache folder, $XDG_CACHE_HOME/hvconf/lint (hvconf/resources.py
cache_dir: private to the user, never a folder a checked-out repository could
plant entries in), or `--cache-dir DIR`. A folder that is a symbolic link, or
that another user could write, is not used. Writes are atomic (a private
temporary file renamed over the entry), so concurrent runs and a kill at any
point leave whole entries; an entry that does not parse, or whose shape is
wrong, is a miss. `hvconf clean` removes the cache. docs/ci.md has the user's
view. Tested by tests/test_lint_cache.py.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from hvconf.diagnostics import Diagnostic, Note, Report, Severity, Span


def _own_sha256() -> Any:
    """CPython's own SHA-256 (_sha256, _sha2 from 3.12), else hashlib's: importing hashlib also
    loads OpenSSL and BLAKE2, ~15 ms of a cache hit's start-up. The digests are the same."""
    for module in ("_sha2", "_sha256"):
        try:
            return __import__(module).sha256
        except ImportError:
            continue
    from hashlib import sha256

    return sha256


sha256 = _own_sha256()

if TYPE_CHECKING:
    from hvconf.compiler import Result
    from hvconf.syntax.paths import Scope

SUFFIX = ".hv"
LAYOUT = "v1"  # the entries' folder below the cache folder; a new entry format gets a new one
MAX_ENTRY_BYTES = 64 << 20  # more than any real entry (a file is at most 256 KiB of text)
MAX_SOURCE_BYTES = 256 << 10  # hvconf/syntax/loader.py MAX_FILE_BYTES: no larger .hv file is read
GITIGNORE = "# Created by hvconf: this folder is a cache.\n*\n"
# https://bford.info/cachedir/: backup tools skip a folder holding this file.
CACHEDIR_TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
                "# This file is a cache directory tag created by hvconf.\n")


class CacheDirError(Exception):
    """A --cache-dir that cannot be used: the message says why (the run goes on without a cache)."""


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _folder(path: Path, *, create: bool) -> Path:
    """`path` as a usable cache folder: a real folder (not a symbolic link), ours, writable by
    no one else; created private when missing and `create`."""
    if create and not os.path.lexists(path):
        try:
            path.mkdir(mode=0o700, parents=True)
        except FileExistsError:  # a concurrent run made it
            pass
        except OSError as err:
            raise CacheDirError(f"cannot create {path}: {err.strerror}") from None
    try:
        st = os.lstat(path)
    except OSError as err:
        raise CacheDirError(f"{path}: {err.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise CacheDirError(f"{path} is a symbolic link")
    if not stat.S_ISDIR(st.st_mode):
        raise CacheDirError(f"{path} is not a folder")
    if not _private(st):
        raise CacheDirError(f"{path} is not private to this user (another user could plant entries)")
    return path


def default_folder() -> Path | None:
    """$XDG_CACHE_HOME/hvconf/lint, or None when the user has no usable cache folder."""
    from hvconf.resources import cache_dir

    base = cache_dir()
    return base / "lint" if base is not None else None


def _fingerprint() -> str:
    """hvconf's version and the size and mtime of each file of its code and data: an
    upgrade, an edited rule or an edited target table makes every entry a miss."""
    import hvconf
    from hvconf.resources import grammar_path, targets_dir

    digest = sha256(hvconf.__version__.encode())
    for top in (Path(hvconf.__file__).parent, targets_dir(), grammar_path().parent):
        for path, st in sorted(_files_below(str(top))):
            digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _files_below(top: str) -> Iterator[tuple[str, os.stat_result]]:
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if not name.endswith((".pyc", ".pyo")):
                path = os.path.join(folder, name)
                try:
                    yield path, os.stat(path)
                except OSError:
                    continue


def _settings(options: dict[str, Any], root: str | None, allow: Sequence[str]) -> str:
    """What else changes a file's findings: --root, --allow-path, host facts, the working folder."""
    host = options.get("host")
    known = {k: v for k, v in options.items() if k != "host"}
    return json.dumps({"root": root, "allow": list(allow), "cwd": os.getcwd(), "uid": os.getuid(),
                       "host": host.model_dump_json() if host is not None else None,
                       "options": sorted(known.items())}, sort_keys=True, default=str)


def _state(path: str) -> str:
    """What a file that findings depend on is now: its real path, and the SHA-256 of a
    regular .hv file's bytes, or the stat of any other file, or the error reaching it."""
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except (OSError, ValueError) as err:
        return f"{path}\0error {getattr(err, 'errno', None)}"
    head = f"{real}\0{st.st_mode:o}\0{st.st_dev}\0{st.st_ino}"
    if not (stat.S_ISREG(st.st_mode) and real.endswith(SUFFIX) and st.st_size <= MAX_SOURCE_BYTES):
        return f"{head}\0{st.st_size}\0{st.st_mtime_ns}"
    data = _read_hv(real)
    return f"{head}\0{sha256(data).hexdigest()}" if data is not None else f"{head}\0unreadable"


def _read_hv(real: str) -> bytes | None:
    """A regular .hv file's bytes; O_NONBLOCK: one swapped for a FIFO since the stat must not block."""
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(MAX_SOURCE_BYTES + 1)


# --- entries <-> JSON

def _span(s: Span | None) -> list[Any] | None:
    return None if s is None else [s.file, s.line, s.col, s.end_line, s.end_col]


def _unspan(v: Any) -> Span | None:
    if v is None:
        return None
    file, line, col, end_line, end_col = v
    if not (isinstance(file, str) and all(type(n) is int for n in (line, col, end_line, end_col))):
        raise ValueError("bad span")
    return Span(file, line, col, end_line, end_col)


def _diagnostic(d: Diagnostic) -> list[Any]:
    return [d.code, d.severity.value, d.message, _span(d.span), [[n.message, _span(n.span)] for n in d.notes],
            d.help]


def _undiagnostic(v: Any) -> Diagnostic:
    code, severity, message, span, notes, help = v
    if not (isinstance(code, str) and isinstance(message, str) and (help is None or isinstance(help, str))
            and all(isinstance(m, str) for m, _ in notes)):
        raise ValueError("bad diagnostic")
    return Diagnostic(code, Severity(severity), message, _unspan(span),
                      tuple(Note(m, _unspan(s)) for m, s in notes), help)


class Entry:
    """One root file's findings (before suppressions), the texts they show and the statement
    spans of files with `hvconf` comments (None for one that did not parse)."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str],
                 spans: dict[str, list[Span] | None]) -> None:
        self.diagnostics = diagnostics
        self.sources = sources
        self.spans = spans


def _decode(data: bytes, key: str) -> Entry | None:
    """The entry in `data` if it was written for `key` and every file it read is as it was."""
    doc = json.loads(data)
    if doc["key"] != key or not all(isinstance(p, str) and _state(p) == s for p, s in doc["deps"]):
        return None
    sources = doc["sources"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in sources.items()):
        raise ValueError("bad sources")
    spans = {file: None if v is None else [s for s in map(_unspan, v) if s is not None]
             for file, v in doc["spans"].items()}
    return Entry([_undiagnostic(d) for d in doc["diagnostics"]], sources, spans)


# --- recording what a checked root depends on

def _dependencies(result: Result) -> list[str] | None:
    """Every path the check of one root read or tried to read (see the module's docstring),
    or None when one cannot be known (a guest source's directive that was refused)."""
    from hvconf.model.inputs import named_files, source_path
    from hvconf.syntax import ast
    from hvconf.syntax.gas import MAX_SOURCE_BYTES as MAX_GUEST_SOURCE, scan
    from hvconf.syntax.paths import PathRefused, read_resolved, resolve

    checked = result.checked[0]
    program = checked.program
    deps = [os.fspath(program.root.path)]
    for loaded in program.files:
        for item in loaded.tree.items if loaded.tree is not None else ():
            if isinstance(item, ast.Include) and item.path.value and "\0" not in item.path.value:
                deps.append(os.path.normpath(loaded.folder / item.path.value))
    for vm in checked.vms:
        if vm.abstract:
            continue
        for _, path, span in named_files(vm):
            source = source_path(path, span, Path.cwd())
            deps.append(os.fspath(source))
            if source.suffix != ".S":
                continue
            try:
                real, _ = resolve(source, program.scope)
                text = read_resolved(real, program.scope, MAX_GUEST_SOURCE).decode("utf-8")
            except (PathRefused, UnicodeDecodeError):
                continue  # refused or unreadable: its own state above says so
            found, refused = scan(source, text, program.scope)
            if refused:
                return None  # a directive's missing file has no path recorded: check it every run
            deps += sorted(found)
    return deps


def _texts(result: Result) -> dict[str, bytes] | None:
    """The bytes of each .hv file of the program as the check read them (None if one changed since)."""
    out: dict[str, bytes] = {}
    for loaded in result.checked[0].program.files:
        data = _read_hv(loaded.real) if loaded.real.endswith(SUFFIX) else None
        if data is None or sha256(data).hexdigest() != loaded.sha256:
            return None
        out[loaded.display] = data
    return out


def record(result: Result) -> dict[str, Any] | None:
    """What to store for the one root `result` checked (compiler.check with suppress=False), or
    None when it must not be cached. Its findings are complete: those of files the shared
    Loader read for an earlier root (each file's `findings`) are added back."""
    from hvconf.check.suppress import statement_spans

    program = result.checked[0].program
    if not program.root.real.endswith(SUFFIX):
        return None  # never keep bytes of a file that is not a definition
    deps, texts = _dependencies(result), _texts(result)
    if deps is None or texts is None:
        return None
    findings = list(dict.fromkeys([*result.report.diagnostics, *(d for f in program.files for d in f.findings)]))
    shown = {s.file for d in findings for s in (d.span, *(n.span for n in d.notes)) if s is not None}
    sources, spans = {}, {}
    for loaded in program.files:
        try:
            text = texts[loaded.display].decode("utf-8")
        except UnicodeDecodeError:
            continue  # invalid-utf8: a fresh run has no text of it either
        if loaded.display in shown or "hvconf" in text:
            sources[loaded.display] = text
        if "hvconf" in text:
            spans[loaded.display] = None if loaded.tree is None else [
                _span(s) for s in statement_spans(loaded.tree)]
    return {"deps": [[p, _state(p)] for p in dict.fromkeys(deps)],
            "diagnostics": [_diagnostic(d) for d in findings], "sources": sources, "spans": spans}


class LintCache:
    """Lookups and stores of one run (one set of options, one working folder)."""

    def __init__(self, folder: Path, options: dict[str, Any], root: str | None, allow: Sequence[str]) -> None:
        self.folder = folder
        self.entries = folder / LAYOUT
        self._run = sha256(f"{_fingerprint()}\0{_settings(options, root, allow)}".encode()).hexdigest()
        self._root, self._allow = root, tuple(allow)
        self._scopes: dict[str, Scope] = {}
        self.hits = self.misses = 0

    def _key(self, path: str) -> str:
        from hvconf.syntax.paths import scope_for

        absolute = os.path.abspath(path)
        folder = os.path.dirname(absolute)
        if folder not in self._scopes:
            self._scopes[folder] = scope_for(absolute, self._root, self._allow)
        scope = self._scopes[folder]
        return sha256(json.dumps([self._run, absolute, scope.root, list(scope.allowed)]).encode()).hexdigest()

    def lookup(self, path: str) -> Entry | None:
        """The entry of root `path` if it is still right, else None (a miss)."""
        key = self._key(path)
        try:
            fd = os.open(self.entries / f"{key}.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self.misses += 1
            return None
        try:
            with open(fd, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read(MAX_ENTRY_BYTES + 1) if stat.S_ISREG(st.st_mode) and _private(st) else b""
            entry = _decode(data, key) if 0 < len(data) <= MAX_ENTRY_BYTES else None
        except Exception:  # noqa: BLE001  a corrupt or foreign entry, whatever it holds, is a miss
            entry = None
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def store(self, path: str, recorded: dict[str, Any]) -> None:
        """Write root `path`'s entry atomically; a cache that cannot be written only costs speed."""
        key = self._key(path)
        data = json.dumps({"key": key, **recorded}, ensure_ascii=False, separators=(",", ":")).encode()
        tmp = self.entries / f".{key}.{os.getpid()}.tmp"
        try:
            _folder(self.entries, create=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.entries / f"{key}.json")
        except (OSError, CacheDirError):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def open_cache(folder: str | None, options: dict[str, Any], root: str | None,
               allow: Sequence[str]) -> LintCache | None:
    """The run's cache in `folder` (--cache-dir) or the user's cache folder; None when there is
    no usable default folder. CacheDirError for a --cache-dir that cannot be used."""
    if folder is None:
        base = default_folder()
        if base is None:
            return None
        try:
            path = _folder(base, create=True)
        except CacheDirError:
            return None
    else:
        path = _folder(Path(folder), create=True)
        _mark(path)
    if os.path.lexists(path / LAYOUT):  # entries are read from here: it must pass the same test
        try:
            _folder(path / LAYOUT, create=False)
        except CacheDirError:
            if folder is None:
                return None
            raise
    return LintCache(path, options, root, allow)


def _mark(folder: Path) -> None:
    """A .gitignore of `*` and a CACHEDIR.TAG in a cache folder the user named (as ruff does), so
    one inside a project is neither committed nor backed up."""
    for name, text in ((".gitignore", GITIGNORE), ("CACHEDIR.TAG", CACHEDIR_TAG)):
        target = folder / name
        if not os.path.lexists(target):
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                with open(fd, "w") as f:
                    f.write(text)
            except OSError:
                pass


def clean(folder: str | None) -> Path | None:
    """Remove the lint cache: the user's whole lint folder, or what hvconf wrote in `folder`
    (--cache-dir: its entries and marks, never anything else there). The folder cleaned, or None."""
    import shutil  # only `hvconf clean` needs it (and its bz2, lzma): not at a check's start-up

    if folder is None:
        base = default_folder()
        if base is None or not os.path.isdir(base) or os.path.islink(base):
            return base
        shutil.rmtree(base)
        return base
    path = _folder(Path(folder), create=False)
    if os.path.isdir(path / LAYOUT) and not os.path.islink(path / LAYOUT):
        shutil.rmtree(path / LAYOUT)
    for name in (".gitignore", "CACHEDIR.TAG"):
        target = path / name
        if os.path.isfile(target) and not os.path.islink(target) and target.read_text(errors="replace") in (
                GITIGNORE, CACHEDIR_TAG):
            target.unlink()
    return path


def cached_chunk_parts(entries: Sequence[Entry]) -> tuple[Report, dict[str, list[Span] | None]]:
    """One report (findings and texts) and the statement spans of the entries of cache hits."""
    report = Report()
    spans: dict[str, list[Span] | None] = {}
    for entry in entries:
        report.diagnostics.extend(entry.diagnostics)
        report.sources.update(entry.sources)
        spans.update(entry.spans)
    return report, spans
