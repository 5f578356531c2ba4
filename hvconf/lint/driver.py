"""Lint many definitions in one run: find the files, check them, merge one report.

`discover` turns command-line paths into a sorted list of .hv files; `lint`
checks them with one shared Loader per process (an included file is parsed
once per process), optionally across `jobs` worker processes, and returns
the same report, in the same order, whatever `jobs` is. Of each checked file
it keeps the findings, not the tree or text, so memory stays flat over a repo.
Writes nothing and prints nothing (but the lint cache's entries, given a
cache: hvconf/lint/cache.py); rendering is hvconf.lint.formats'. Tested by
tests/test_lint_scale.py and tests/test_lint_cache.py.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from hvconf.diagnostics import Diagnostic, Report, Severity, Span

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from hvconf.compiler import Result
    from hvconf.lint.cache import LintCache
    from hvconf.lint.settings import Finder, Settings
    from hvconf.syntax import ast
    from hvconf.syntax.loader import Program

SUFFIX = ".hv"
# hvconf/check/suppress.py's _PRAGMA: a file without one has no suppression to apply, and a cache
# hit need not import the checks (hvconf.check) to find that out.
_PRAGMA = re.compile(r"#\s*hvconf\s*:")


class UsageError(Exception):
    """A command-line path or option that cannot be used (exit status 2)."""


class LintResult:
    """The merged report, how many root files were checked, and the roots that could not be read."""

    __slots__ = ("report", "files", "unreadable")

    def __init__(self, report: Report, files: int, unreadable: list[str] | None = None) -> None:
        self.report = report
        self.files = files
        self.unreadable: list[str] = unreadable if unreadable is not None else []


def _hidden(name: str) -> bool:
    return name.startswith(".")


def discover(paths: Iterable[str | Path], finder: "Finder | None" = None) -> list[str]:
    """Files named on the command line as given; directories searched for *.hv,
    skipping hidden files and folders and, with a `finder`, what each folder's settings
    exclude (exclude, extend-exclude, .gitignore). Sorted within each directory (component
    by component, as Paths sort), each file once. ConfigError for a bad configuration.

    Names, not Path objects: a repo of 10,000 files holds its list for the whole run, and
    a Path with its parts and cached string was three times the size of its name."""
    found: list[str] = []
    for arg in paths:
        path = Path(arg)
        if not os.path.lexists(path):
            raise UsageError(f"{arg}: No such file or directory")
        if not path.is_dir():
            found.append(os.fspath(path))
            continue
        inside: list[str] = []
        for folder, dirs, files in os.walk(path):
            settings = finder.for_folder(folder) if finder is not None else None
            dirs[:] = [d for d in dirs if not _hidden(d) and not _excluded(settings, os.path.join(folder, d))]
            inside += [os.path.join(folder, f) for f in files if f.endswith(SUFFIX) and not _hidden(f)
                       and not _excluded(settings, os.path.join(folder, f))]
        if finder is not None:
            inside = _not_gitignored(inside, finder)
        if not inside:
            raise UsageError(f"{arg}: no {SUFFIX} files in this directory")
        found += sorted(inside, key=_components)
    return _once_each(found)


def _excluded(settings: "Settings | None", path: str) -> bool:
    return settings is not None and settings.excludes(path)


@lru_cache(maxsize=4096)
def _git_top(folder: str) -> str | None:
    """The nearest folder from absolute `folder` up that holds `.git`."""
    start = Path(folder)
    return next((os.fspath(f) for f in (start, *start.parents) if os.path.lexists(f / ".git")), None)


def _not_gitignored(files: list[str], finder: "Finder") -> list[str]:
    """`files` without those git ignores (`git check-ignore`: .gitignore files, .git/info/exclude,
    core.excludesFile), for files whose settings respect .gitignore. Without git, or outside a
    work tree, nothing is ignored."""
    import subprocess

    by_top: dict[str, list[str]] = {}
    for f in files:
        top = _git_top(os.path.abspath(os.path.dirname(f) or os.curdir))  # absolute: the cache outlives a chdir
        if top is not None and finder.for_file(f).respect_gitignore:
            by_top.setdefault(top, []).append(f)
    ignored: set[str] = set()
    for top, names in by_top.items():
        absolute = {os.path.abspath(n): n for n in names}
        try:
            # core.fsmonitor off: a checked folder's own .git/config must not name a program to run
            done = subprocess.run(["git", "-c", "core.fsmonitor=false", "-C", top, "check-ignore", "-z", "--stdin"],
                                  input="\0".join(absolute), capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            ignored |= {absolute[p] for p in done.stdout.split("\0") if p in absolute}
    return [f for f in files if f not in ignored]


def _components(name: str) -> list[str]:
    return name.split(os.sep)


def _once_each(paths: list[str]) -> list[str]:
    """The first of the paths that are the same file (os.path.realpath), in order. A folder is
    resolved once: a file that is no symlink resolves to its resolved folder plus its name."""
    seen: set[str] = set()
    folders: dict[str, str] = {}
    out: list[str] = []
    for text in paths:
        folder, name = os.path.split(text)
        if os.path.islink(text):
            real = os.path.realpath(text)
        else:
            if folder not in folders:
                folders[folder] = os.path.realpath(folder or os.curdir)
            real = os.path.join(folders[folder], name)
        if real not in seen:
            seen.add(real)
            out.append(text)
    return out


class _Chunk:
    """What one worker sends back: its report, how many roots it checked, the roots it
    could not read, and the trees (or, from the cache, the statement spans) of files that
    may hold `# hvconf:` comments; with a cache, each checked root's entry to store."""

    __slots__ = ("report", "checked", "unreadable", "trees", "spans", "recorded")

    def __init__(self, report: Report) -> None:
        self.report = report
        self.checked = 0
        self.unreadable: list[str] = []
        self.trees: dict[str, ast.SourceFile] = {}
        self.spans: dict[str, list[Span] | None] = {}
        self.recorded: list[tuple[str, dict[str, Any]]] = []


def _check_chunk(paths: Sequence[str | Path], options: dict[str, Any], root: str | None = None,
                 allow: tuple[str, ...] = (), record: bool = False) -> _Chunk:
    """Check `paths` with one Loader (reading within `root` and `allow`, see Loader); a root
    that cannot be read is noted, not fatal. Suppressions are left to the caller: they apply
    once, to the merged report. `record`: keep each root's cache entry (hvconf/lint/cache.py)."""
    from hvconf import compiler
    from hvconf.syntax.loader import InputError, Loader

    loader, chunk = Loader(root, allow), _Chunk(Report())
    for path in paths:
        try:
            # as_needed: a plainly valid file's IR is made without pydantic's validators (compiler.check)
            result = compiler.check([Path(path)], loader=loader, suppress=False, as_needed=True, **options)
        except InputError as err:
            chunk.unreadable.append(str(err))
            continue
        if record:
            from hvconf.lint.cache import record as entry_of

            entry = entry_of(result)
            if entry is not None:
                chunk.recorded.append((str(path), entry))
        program = result.checked[0].program
        if not _base(program) and loader.release(program.root.path):  # keep its findings only
            _drop_unneeded_source(result.report, program.root.display)
        chunk.report.extend(result.report)
        chunk.checked += 1
        for loaded in program.files:
            if loaded.tree is not None and "hvconf" in chunk.report.sources.get(loaded.display, ""):
                chunk.trees[loaded.display] = loaded.tree
    return chunk


def _base(program: Program) -> bool:
    """Whether the root declares no concrete VM, as the bases other files include do: the
    loader keeps those, so a later `include` of one does not parse it again. Any other
    root is released once checked (another file may still include it: it is then re-read)."""
    tree = program.root.tree
    return tree is not None and not any(not vm.abstract for vm in program.own_vms)


def _drop_unneeded_source(report: Report, file: str) -> None:
    """Forget `file`'s text unless a finding points into it (rendering shows the line) or it
    may hold `# hvconf:` comments (suppressions read it): memory stays flat over a repo."""
    text = report.sources.get(file)
    if text is None or "hvconf" in text:
        return
    for d in report.diagnostics:
        if (d.span is not None and d.span.file == file) or any(n.span and n.span.file == file for n in d.notes):
            return
    del report.sources[file]


def _total_key(d: Diagnostic) -> tuple[Any, ...]:
    # sort_key ties (same place, code and message) are broken by the rest, so order never
    # depends on which worker found what.
    return d.sort_key + (d.severity.value, d.help or "", repr(d.notes))


def _merged(parts: Sequence[_Chunk]) -> Report:
    """One report with each distinct diagnostic once (a file included by roots in
    different workers, or visited again by each root, is reported once), after the
    suppressions of all files, in a total order."""
    merged = Report()
    seen: set[Diagnostic] = set()
    trees: dict[str, ast.SourceFile] = {}
    spans: dict[str, list[Span] | None] = {}
    for part in parts:
        merged.sources.update(part.report.sources)
        trees.update(part.trees)
        spans.update(part.spans)
        for d in part.report.diagnostics:
            if d not in seen:
                seen.add(d)
                merged.diagnostics.append(d)
    if any(_PRAGMA.search(text) for text in merged.sources.values()):  # else no comment suppresses
        from hvconf.check.suppress import apply

        merged = apply(merged, merged.sources, trees, spans)
    merged.diagnostics.sort(key=_total_key)
    return merged


def _context() -> "BaseContext | None":
    """fork where there is one, after importing the compiler and building the parser once,
    so workers start warm instead of each paying the imports (the parent has no threads)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    from hvconf import compiler  # noqa: F401  (imported for the children)
    from hvconf.syntax.parser import parser

    parser()
    return multiprocessing.get_context("fork")


def _from_cache(paths: Sequence[str | Path], cache: LintCache) -> tuple[_Chunk, list[str | Path]]:
    """The cache hits among `paths` as one chunk, and the paths left to check."""
    from hvconf.lint.cache import cached_chunk_parts

    hits, misses = [], []
    for path in paths:
        entry = cache.lookup(str(path))
        if entry is None:
            misses.append(path)
        else:
            hits.append(entry)
    report, spans = cached_chunk_parts(hits)
    chunk = _Chunk(report)
    chunk.checked, chunk.spans = len(hits), spans
    return chunk, misses


def lint(paths: Sequence[str | Path], *, jobs: int = 1, root: str | None = None, allow: Sequence[str] = (),
         cache: LintCache | None = None, **options: Any) -> LintResult:
    """Check every path; `options` go to compiler.check. jobs <= 0 means one per CPU. `root`
    (--root) and `allow` (--allow-path) say where definitions may read (hvconf/syntax/paths.py).
    With a `cache`, unchanged files are taken from it and the others stored in it."""
    parts: list[_Chunk] = []
    if cache is not None:
        hit, paths = _from_cache(paths, cache)
        parts.append(hit)
    jobs = jobs if jobs > 0 else (os.cpu_count() or 1)
    jobs = min(jobs, len(paths)) or 1
    record = cache is not None
    if paths and jobs == 1:
        parts.append(_check_chunk(paths, options, root, tuple(allow), record))
    elif paths:
        from concurrent.futures import ProcessPoolExecutor

        from hvconf.emit.jobs import contiguous_runs

        # contiguous runs of sorted paths: files of one folder (which tend to include the same
        # bases) mostly share a worker and its parsed includes

        with ProcessPoolExecutor(max_workers=jobs, mp_context=_context()) as pool:
            futures = [pool.submit(_check_chunk, chunk, options, root, tuple(allow), record)
                       for chunk in contiguous_runs(paths, jobs)]
            parts += [f.result() for f in futures]  # in submission order, not completion order
    if cache is not None:
        for path, entry in (pair for part in parts for pair in part.recorded):
            cache.store(path, entry)
    return LintResult(_merged(parts), sum(p.checked for p in parts), [u for p in parts for u in p.unreadable])


def parse_codes(values: Sequence[str] | None) -> frozenset[str]:
    """Codes, code prefixes or ALL from repeated, comma-separated options; UsageError with a
    did-you-mean for one that selects no code."""
    codes = {c.strip() for v in values or () for c in v.split(",") if c.strip()}
    if not codes:  # the usual case: no need to load every rule's docs (hvconf.lint.explain) to list the codes
        return frozenset()
    from hvconf.lint.settings import selector_problem

    for code in sorted(codes):
        problem = selector_problem(code)
        if problem is not None:
            hint = f" ({problem[1]})" if problem[1] else ""
            raise UsageError(f"unknown diagnostic code '{code}'{hint}")
    return frozenset(codes)


def with_settings(report: Report, finder: "Finder", cli: "Settings") -> Report:
    """`report` with only what each finding's settings report: those of its file (found by
    `finder`), or of the working directory for a finding about no file, each overlaid with the
    command line's selection (`cli`'s cli_* fields). ConfigError for a bad configuration."""
    out = Report(sources=report.sources)
    for d in report.diagnostics:
        file = d.span.file if d.span is not None else None
        found = finder.for_file(file) if file else finder.for_folder(os.getcwd())
        settings = found.with_cli(cli.cli_select, cli.cli_extend_select, cli.cli_ignore)
        if settings.reports(d.code, file):
            out.diagnostics.append(d)
    return out


def check_text(text: str | bytes, path: str | Path, settings: "Settings | None" = None, *, root: str | None = None,
               allow: Sequence[str] = (), host: Any = None) -> Report:
    """Lint `text` as the content of `path` (an editor's unsaved buffer, stdin): what `hvconf
    check` would report for it if it were saved there, each finding with its `fix` where it has
    one (hvconf/lint/fixes.py), after suppressions and `settings` (None:
    the project configuration found for `path`; ConfigError if it is bad). `path` need not
    exist: includes resolve against its real folder, paths are confined to its project (or
    `root`, plus `allow`), and diagnostics name it (relative to the working directory when
    below it). `host` is a HostFacts to check against, as --host-facts."""
    return check_buffer(text, path, settings, root=root, allow=allow, host=host).report


def check_buffer(text: str | bytes, path: str | Path, settings: "Settings | None" = None, *,
                 root: str | None = None, allow: Sequence[str] = (), host: Any = None) -> "Result":
    """`check_text` with the program and VMs it checked kept (the language server answers
    hover, completion and definition from them): the Result whose report is `check_text`'s.
    The settings are found first, so a bad configuration costs no compile."""
    from hvconf import compiler
    from hvconf.lint.fixes import attach
    from hvconf.lint.settings import Finder
    from hvconf.syntax.loader import Loader

    if settings is None:
        settings = Finder(root).for_file(path)
    result = compiler.check_text(text, Path(path), loader=Loader(root, tuple(allow)), host=host)
    report = Report(sources=result.report.sources)
    report.diagnostics = [d for d in result.report.diagnostics
                          if settings.reports(d.code, d.span.file if d.span is not None else None)]
    report.diagnostics.sort(key=_total_key)
    result.report = attach(report)
    return result


def filtered(report: Report, *, select: frozenset[str] = frozenset(), ignore: frozenset[str] = frozenset(),
             keep: Iterable[Severity] | None = None) -> Report:
    """`report` with only the selected codes (all when `select` is empty), minus the ignored ones,
    and only the severities in `keep` (all when None)."""
    severities = set(keep) if keep is not None else None
    out = Report(sources=report.sources)
    out.diagnostics = [d for d in report.diagnostics
                       if (not select or d.code in select) and d.code not in ignore
                       and (severities is None or d.severity in severities)]
    return out
