"""Project configuration: `[tool.hvconf]` in pyproject.toml or the top level of hvconf.toml.

Each file's settings come from the nearest configuration file found upward from the file's
folder, stopping at its project root (the folder holding `.git`, or `--root`); in one folder
hvconf.toml wins over pyproject.toml, and a pyproject.toml without `[tool.hvconf]` is passed
over. Settings say which codes are reported (select, extend-select, ignore, per-file-ignores:
codes or code prefixes, `ALL`), which files a folder search skips (exclude, extend-exclude,
respect-gitignore), werror and the default output format. They never say where a definition
may read: `--root` and `--allow-path` are command-line options only, and a configuration can
neither hide nor deselect a refusal such as `path-outside-project` (docs/robustness.md), since
the pull request under review writes it.

A bad configuration is an `invalid-config` diagnostic at its line and column (ConfigError).
A Settings is one immutable value; `key()` identifies it (for caches). Tested by
tests/test_settings.py.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from hvconf.diagnostics import Diagnostic, Severity, Span, close_matches
from hvconf.record import Record

CONFIG_FILES = ("hvconf.toml", "pyproject.toml")  # in one folder, the first found wins
MAX_CONFIG_BYTES = 1 << 20
ALL = "ALL"
FORMATS = ("text", "json", "sarif", "github", "gitlab", "junit")
# Keys a configuration must not have: a definition's reach is the command line's (docs/robustness.md).
REFUSED_KEYS = {
    "allow-path": "a configuration cannot widen what definitions may read: use --allow-path DIR on the command line",
    "root": "a configuration cannot move the project root: use --root DIR on the command line",
}


class ConfigError(Exception):
    """A configuration that cannot be used: its diagnostic and the text it points into."""

    def __init__(self, diagnostic: Diagnostic, source: str | None = None) -> None:
        super().__init__(f"{diagnostic.span}: {diagnostic.message}" if diagnostic.span else diagnostic.message)
        self.diagnostic = diagnostic
        self.source = source


class Settings(Record):
    """What applies to one file. Patterns are relative to `base`, the configuration's folder.
    `cli_select` (None: not given) and `cli_ignore` come from the command line; only they
    may deselect or hide a refusal (REFUSALS of hvconf/check/suppress.py)."""

    __slots__ = ("source", "base", "select", "extend_select", "ignore", "per_file_ignores", "exclude",
                 "extend_exclude", "respect_gitignore", "werror", "output_format", "cli_select",
                 "cli_extend_select", "cli_ignore")
    _defaults = {"source": None, "base": "", "select": (ALL,), "extend_select": (), "ignore": (),
                 "per_file_ignores": (), "exclude": (), "extend_exclude": (), "respect_gitignore": True,
                 "werror": False, "output_format": None, "cli_select": None, "cli_extend_select": (),
                 "cli_ignore": ()}
    source: str | None
    base: str
    select: tuple[str, ...]
    extend_select: tuple[str, ...]
    ignore: tuple[str, ...]
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...]
    exclude: tuple[str, ...]
    extend_exclude: tuple[str, ...]
    respect_gitignore: bool
    werror: bool
    output_format: str | None
    cli_select: tuple[str, ...] | None
    cli_extend_select: tuple[str, ...]
    cli_ignore: tuple[str, ...]

    def key(self) -> str:
        """A stable text that differs whenever the settings do (a cache key's part)."""
        return repr(tuple(getattr(self, name) for name in self.__slots__))

    def with_cli(self, select: tuple[str, ...] | None = None, extend_select: tuple[str, ...] = (),
                 ignore: tuple[str, ...] = ()) -> "Settings":
        return self._replace(cli_select=select, cli_extend_select=extend_select, cli_ignore=ignore)

    def reports(self, code: str, file: str | None = None) -> bool:
        """Whether a finding of `code` in `file` (a path; None: no file) is reported."""
        from hvconf.check.suppress import REFUSALS

        protected = code in REFUSALS
        chosen = self.cli_select if self.cli_select is not None else self.select
        selected = matches(chosen + self.extend_select + self.cli_extend_select, code)
        if protected and self.cli_select is None:
            selected = True  # a configuration cannot deselect a refusal
        if not selected or matches(self.cli_ignore, code):
            return False
        return protected or not (matches(self.ignore, code) or matches(self.file_ignores(file), code))

    def file_ignores(self, file: str | None) -> tuple[str, ...]:
        """The codes per-file-ignores hides in `file`."""
        if file is None or not self.per_file_ignores:
            return ()
        rel = relative(file, self.base)
        return tuple(c for pattern, codes in self.per_file_ignores if rel is not None
                     and glob_matches(pattern, rel) for c in codes)

    def excludes(self, path: str) -> bool:
        """Whether a folder search skips `path` (a file or folder)."""
        rel = relative(path, self.base)
        return rel is not None and any(glob_matches(p, rel) for p in self.exclude + self.extend_exclude)


DEFAULT = Settings()


def matches(selectors: Sequence[str], code: str) -> bool:
    """`code` is one of `selectors`, starts with one (a prefix), or they hold ALL."""
    return any(s == ALL or code.startswith(s) for s in selectors)


def relative(path: str, base: str) -> str | None:
    """`path` relative to `base`, with '/' separators; None when it is not below `base`."""
    if not base:
        return None
    rel = os.path.relpath(os.path.abspath(path), base)
    return None if rel == os.pardir or rel.startswith(os.pardir + os.sep) else Path(rel).as_posix()


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """A gitignore-style pattern: `*` and `?` stay inside one folder name, `**` crosses
    folders; a pattern without an inner '/' matches a name at any depth; a match of a
    folder covers everything below it."""
    text = pattern.strip()
    anchored = "/" in text.rstrip("/")
    text = text.strip("/")
    out, i = [], 0
    while i < len(text):
        if text.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif text.startswith("**", i):
            out.append(".*")
            i += 2
        elif text[i] == "*":
            out.append("[^/]*")
            i += 1
        elif text[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(text[i]))
            i += 1
    head = "" if anchored else "(?:.*/)?"
    return re.compile(f"{head}{''.join(out)}(?:/.*)?")


def glob_matches(pattern: str, rel: str) -> bool:
    return _glob(pattern).fullmatch(rel) is not None


# ---- reading a configuration --------------------------------------------------------------


def _diagnostic(message: str, span: Span | None = None, help: str | None = None) -> Diagnostic:
    return Diagnostic("invalid-config", Severity.ERROR, message, span, help=help)


def _error(message: str, display: str, where: tuple[int, int, int], help: str | None = None) -> Diagnostic:
    line, col, end = where
    return _diagnostic(message, Span(display, line, col, line, end), help)


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"\n]*"|'[^'\n]*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"\n]*"|'[^'\n]*'|[A-Za-z0-9_-]+))*)\s*=""")
_PART = re.compile(r"""\s*("[^"\n]*"|'[^'\n]*'|[A-Za-z0-9_-]+)\s*""")


def _dotted(text: str) -> tuple[str, ...]:
    return tuple(m.group(1).strip("\"'") for m in _PART.finditer(text))


def locate(text: str, path: tuple[str, ...], item: str | None = None) -> tuple[int, int, int]:
    """(line, column, end column) of the key at `path` (tables and key, as tomllib nests them),
    or of `item`, a string inside its value; line 1 column 1 when the scan cannot tell."""
    table: tuple[str, ...] = ()
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        header = _HEADER.match(line)
        if header is not None and not line.lstrip().startswith("[["):
            table = _dotted(header.group(1))
            if table == path:
                return number, line.index("[") + 1, len(line.rstrip()) + 1
            continue
        key = _KEY.match(line)
        if key is None or table + _dotted(key.group(1)) != path:
            continue
        if item is None:
            start = len(line) - len(line.lstrip())
            return number, start + 1, key.end(1) + 1
        for later, rest in enumerate(lines[number - 1:], number):
            for quoted in (f'"{item}"', f"'{item}'"):
                at = rest.find(quoted)
                if at >= 0:
                    return later, at + 1, at + len(quoted) + 1
        value = key.end() + len(line[key.end():]) - len(line[key.end():].lstrip())
        return number, value + 1, len(line.rstrip()) + 1
    return 1, 1, 2


def _syntax_place(err: ValueError, text: str) -> tuple[int, int, int]:
    lines = text.split("\n")
    found = re.search(r"\(at line (\d+), column (\d+)\)", str(err))
    line, col = (int(found.group(1)), int(found.group(2))) if found else (len(lines), len(lines[-1]) + 1)
    while line > 1 and not lines[line - 1].strip():  # the end of the text: point after its last character
        line -= 1
        col = len(lines[line - 1].rstrip()) + 1
    return line, col, col + 1


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


class _Reader:
    """Checks one configuration table, each problem located in its text."""

    def __init__(self, text: str, display: str, prefix: tuple[str, ...]) -> None:
        self.text, self.display, self.prefix = text, display, prefix

    def fail(self, message: str, path: tuple[str, ...], item: str | None = None,
             help: str | None = None) -> ConfigError:
        where = locate(self.text, self.prefix + path, item)
        return ConfigError(_error(message, self.display, where, help), self.text)

    def selectors(self, key: str, value: Any, path: tuple[str, ...] | None = None) -> tuple[str, ...]:
        path = path or (key,)
        if not _strings(value):
            raise self.fail(f"'{key}' takes a list of codes or code prefixes", path)
        for selector in value:
            problem = selector_problem(selector)
            if problem is not None:
                raise self.fail(problem[0], path, selector, problem[1])
        return tuple(value)

    def patterns(self, key: str, value: Any) -> tuple[str, ...]:
        if not _strings(value):
            raise self.fail(f"'{key}' takes a list of path patterns", (key,))
        return tuple(value)

    def flag(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(f"'{key}' takes true or false", (key,))
        return value

    def output_format(self, key: str, value: Any) -> str:
        if value not in FORMATS:
            raise self.fail(f"'{key}' is one of {', '.join(FORMATS)}", (key,))
        return str(value)

    def per_file(self, key: str, value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if not isinstance(value, dict):
            raise self.fail(f"'{key}' takes a table of path pattern = [codes]", (key,))
        return tuple((pattern, self.selectors(pattern, codes, (key, pattern))) for pattern, codes in value.items())


# Each key: the Settings field and how its value is read.
_KEYS: dict[str, tuple[str, Callable[[_Reader, str, Any], Any]]] = {
    "select": ("select", _Reader.selectors),
    "extend-select": ("extend_select", _Reader.selectors),
    "ignore": ("ignore", _Reader.selectors),
    "per-file-ignores": ("per_file_ignores", _Reader.per_file),
    "exclude": ("exclude", _Reader.patterns),
    "extend-exclude": ("extend_exclude", _Reader.patterns),
    "respect-gitignore": ("respect_gitignore", _Reader.flag),
    "werror": ("werror", _Reader.flag),
    "output-format": ("output_format", _Reader.output_format),
}


def selector_problem(selector: str) -> tuple[str, str | None] | None:
    """Why `selector` selects no code (message, help), or None when it is ALL, a code or a prefix of codes."""
    from hvconf.codes import CODES, closest_code

    if selector == ALL or (selector and any(code.startswith(selector) for code in CODES)):
        return None
    guess = closest_code(selector)
    return (f"unknown diagnostic code or prefix '{selector}'",
            f"did you mean '{guess}'?" if guess else "docs/diagnostics.md lists every code; ALL selects them all")


def parse_config(text: str, display: str, pyproject: bool) -> dict[str, Any] | None:
    """The hvconf table of a configuration's text (None for a pyproject.toml without one)."""
    import tomllib  # only when a configuration exists: most runs have none

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = re.sub(r"\s*\((?:at line \d+, column \d+|at end of document)\)", "", str(err))
        raise ConfigError(_error(f"not valid TOML: {message}", display, _syntax_place(err, text)), text) from None
    if not pyproject:
        return data
    tool = data.get("tool")
    table = tool.get("hvconf") if isinstance(tool, dict) else None
    if table is not None and not isinstance(table, dict):
        reader = _Reader(text, display, ("tool",))
        raise reader.fail("'tool.hvconf' must be a table", ("hvconf",))
    return table


def settings_from(table: dict[str, Any], text: str, display: str, prefix: tuple[str, ...], source: str) -> Settings:
    reader = _Reader(text, display, prefix)
    values: dict[str, Any] = {"source": source, "base": os.path.dirname(source)}
    for key, value in table.items():
        if key in REFUSED_KEYS:
            raise reader.fail(f"'{key}' is not a configuration key", (key,), help=REFUSED_KEYS[key])
        if key not in _KEYS:

            close = close_matches(key, list(_KEYS), n=1)
            raise reader.fail(f"unknown configuration key '{key}'", (key,),
                              help=f"did you mean '{close[0]}'?" if close else f"keys are: {', '.join(_KEYS)}")
        field, read = _KEYS[key]
        values[field] = read(reader, key, value)
    return Settings(**values)


def _display(path: str) -> str:
    from hvconf.syntax.loader import display_path

    return display_path(Path(path))


def read_config(path: str, project: str) -> Settings | None:
    """The settings of configuration file `path` (None: a pyproject.toml without [tool.hvconf]).
    Read as a definition's files are (hvconf/syntax/paths.py): a link out of `project`, a FIFO
    or a device is refused, so no host file is ever quoted in an error."""
    from hvconf.syntax.paths import PathRefused, Scope, read_resolved, resolve

    display = _display(path)
    scope = Scope(project)
    try:
        real, _ = resolve(path, scope)
        data = read_resolved(real, scope, MAX_CONFIG_BYTES)
    except PathRefused as err:
        raise ConfigError(_diagnostic(f"cannot read {display}: {err.reason}")) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(_diagnostic(f"{display} is larger than {MAX_CONFIG_BYTES} bytes"))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(_diagnostic(f"{display} is not valid UTF-8")) from None
    pyproject = os.path.basename(path) == "pyproject.toml"
    table = parse_config(text, display, pyproject)
    if table is None:
        return None
    return settings_from(table, text, display, ("tool", "hvconf") if pyproject else (), os.path.abspath(path))


class Finder:
    """The settings of each file, by folder, read once per run. `root` is --root."""

    def __init__(self, root: str | None = None) -> None:
        self._root = os.path.realpath(root) if root else None
        self._by_folder: dict[str, Settings] = {}

    def _stop(self, folder: str) -> str:
        from hvconf.syntax.paths import project_root

        if self._root is not None and (folder == self._root or folder.startswith(self._root.rstrip("/") + "/")):
            return self._root
        return project_root(os.path.join(folder, "x"))

    def for_file(self, path: str | Path) -> Settings:
        """The settings that apply to file `path` (which need not exist); ConfigError when bad."""
        return self.for_folder(os.path.dirname(os.path.abspath(path)))

    def for_folder(self, folder: str) -> Settings:
        folder = os.path.realpath(folder)
        if folder not in self._by_folder:
            self._by_folder[folder] = self._search(folder, self._stop(folder))
        return self._by_folder[folder]

    def _search(self, folder: str, stop: str) -> Settings:
        for name in CONFIG_FILES:
            candidate = os.path.join(folder, name)
            if os.path.lexists(candidate):
                found = read_config(candidate, stop)
                if found is not None:
                    return found
        parent = os.path.dirname(folder)
        if folder == stop or parent == folder or not (stop == "/" or folder.startswith(stop.rstrip("/") + "/")):
            return DEFAULT
        return self.for_folder(parent)


def describe(settings: Settings, file: str) -> str:
    """What applies to `file`, for `hvconf check --show-settings`: TOML-like lines."""
    from hvconf.codes import CODES

    def listed(values: Sequence[str]) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    reported = [c for c in CODES if settings.reports(c, file)]
    lines = [f"# settings for {file}",
             f"# from {_display(settings.source)}" if settings.source else "# from no configuration file (defaults)",
             f"select = {listed(settings.cli_select if settings.cli_select is not None else settings.select)}",
             f"extend-select = {listed(settings.extend_select + settings.cli_extend_select)}",
             f"ignore = {listed(settings.ignore + settings.cli_ignore)}",
             f"per-file-ignores = {listed(settings.file_ignores(file))}  # those that match this file",
             f"exclude = {listed(settings.exclude)}",
             f"extend-exclude = {listed(settings.extend_exclude)}",
             f"respect-gitignore = {str(settings.respect_gitignore).lower()}",
             f"werror = {str(settings.werror).lower()}",
             f'output-format = "{settings.output_format or "text"}"',
             f"# {len(reported)} of {len(CODES)} codes reported"
             + (f"; not reported: {', '.join(c for c in CODES if c not in reported)}" if len(reported) < len(CODES)
                else "")]
    return "".join(line + "\n" for line in lines)
