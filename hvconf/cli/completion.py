"""Shell completion scripts for bash, zsh and fish, generated from the argparse tree.

Commands, their options, option choices and file arguments are read from
the parser `hvconf.cli.parser()` builds, so a command another module
registers is completed without changes here. Nothing is installed: the
script is printed for the user to source. Tested by tests/test_cli.py.
"""

from __future__ import annotations

import argparse
from typing import Callable, Iterable

from hvconf.record import Record

SHELLS = ("bash", "zsh", "fish")
FILE_METAVARS = frozenset({"FILE", "PATH", "DIR"})


def _codes() -> list[str]:
    from hvconf.codes import known_codes

    return sorted(known_codes())


def _targets() -> list[str]:
    from hvconf.model.target import target_names

    return list(target_names())


# Values completed for options by metavar, where argparse has no `choices` (they are validated later).
METAVAR_WORDS: dict[str, Callable[[], list[str]]] = {"CODES": _codes, "CODE": _codes, "TARGET": _targets}


class Option(Record):
    __slots__ = ("flags", "help", "takes_value", "words", "files", "repeat")
    _defaults = {"words": (), "files": False, "repeat": False}
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    words: tuple[str, ...]
    files: bool
    repeat: bool


class Positional(Record):
    __slots__ = ("name", "words", "files", "many")
    name: str
    words: tuple[str, ...]
    files: bool
    many: bool


class Command(Record):
    __slots__ = ("name", "help", "options", "positionals")
    name: str
    help: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]


def _words(action: argparse.Action) -> tuple[str, ...]:
    if action.choices is not None and not isinstance(action.choices, dict):
        return tuple(str(c) for c in action.choices)
    metavar = action.metavar if isinstance(action.metavar, str) else None
    return tuple(METAVAR_WORDS[metavar]()) if metavar in METAVAR_WORDS else ()


def _help(action: argparse.Action) -> str:
    text = (action.help or "").replace("%(default)s", str(action.default)).replace("%%", "%")
    return " ".join(text.split())


def _options(actions: Iterable[argparse.Action]) -> tuple[Option, ...]:
    out = []
    for a in actions:
        if not a.option_strings or a.help == argparse.SUPPRESS:
            continue
        takes = a.nargs != 0
        out.append(Option(tuple(a.option_strings), _help(a), takes, _words(a) if takes else (),
                          takes and a.metavar in FILE_METAVARS, isinstance(a, argparse._AppendAction)))
    return tuple(out)


def commands(top: argparse.ArgumentParser) -> tuple[tuple[Option, ...], tuple[Command, ...]]:
    """The top-level options and every sub-command, in the parser's order."""
    found: list[Command] = []
    for action in top._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {c.dest: c.help or "" for c in action._choices_actions}
        for name, sub in action.choices.items():
            positionals = tuple(
                Positional(str(a.metavar or a.dest), _words(a), a.metavar in FILE_METAVARS, a.nargs in ("+", "*"))
                for a in sub._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction))
            found.append(Command(name, " ".join(helps.get(name, "").split()), _options(sub._actions), positionals))
    return _options(top._actions), tuple(found)


# --- bash ---------------------------------------------------------------------------------------

def bash(prog: str, top: tuple[Option, ...], cmds: tuple[Command, ...]) -> str:
    fn = "_" + prog.replace("-", "_")
    lines = [f"# bash completion for {prog}; load with: source <({prog} completion bash)",
             f"{fn}() {{",
             '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmd="" i',
             "    for ((i = 1; i < COMP_CWORD; i++)); do",
             '        case "${COMP_WORDS[i]}" in -*) ;; *) cmd="${COMP_WORDS[i]}"; break ;; esac',
             "    done",
             '    case "$cmd" in']
    words = " ".join([c.name for c in cmds] + [f for o in top for f in o.flags])
    lines += [f'        "") COMPREPLY=($(compgen -W "{words}" -- "$cur")) ;;']
    for c in cmds:
        lines.append(f"        {c.name})")
        lines.append('            case "$prev" in')
        for o in c.options:
            if not o.takes_value:
                continue
            flags = "|".join(o.flags)
            if o.files:
                lines.append(f"                {flags}) compopt -o filenames; COMPREPLY=($(compgen -f -- \"$cur\")); return ;;")
            else:
                lines.append(f'                {flags}) COMPREPLY=($(compgen -W "{" ".join(o.words)}" -- "$cur")); return ;;')
        lines.append("            esac")
        flags = " ".join(f for o in c.options for f in o.flags)
        lines.append(f'            if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "{flags}" -- "$cur")); return; fi')
        choice = next((p for p in c.positionals if p.words), None)
        if choice is not None:
            lines.append(f'            COMPREPLY=($(compgen -W "{" ".join(choice.words)}" -- "$cur"))')
        elif any(p.files for p in c.positionals):
            lines.append('            compopt -o filenames; COMPREPLY=($(compgen -f -X "!*.hv" -- "$cur") $(compgen -d -- "$cur"))')
        lines.append("            ;;")
    lines += ["    esac", "}", f"complete -F {fn} {prog}", ""]
    return "\n".join(lines)


# --- zsh ----------------------------------------------------------------------------------------

def _zq(text: str) -> str:
    """Text safe inside a single-quoted _arguments spec: quotes closed and reopened, no brackets or colons."""
    return text.replace("'", "'\\''").replace("[", "(").replace("]", ")").replace(":", " -")


def _zsh_option(o: Option) -> str:
    value = ""
    if o.takes_value:
        action = "_files" if o.files else f"({' '.join(o.words)})" if o.words else " "
        value = f":{_zq(o.flags[-1].lstrip('-'))}:{action}"
    star = "*" if o.repeat else ""
    if len(o.flags) == 1:
        return f"'{star}{o.flags[0]}[{_zq(o.help)}]{value}'"
    exclusive = "" if o.repeat else f"({' '.join(o.flags)})"
    return f"'{star}{exclusive}'{{{','.join(o.flags)}}}'[{_zq(o.help)}]{value}'"


def zsh(prog: str, top: tuple[Option, ...], cmds: tuple[Command, ...]) -> str:
    fn = "_" + prog.replace("-", "_")
    lines = [f"#compdef {prog}", f"# zsh completion for {prog}; load with: source <({prog} completion zsh)",
             f"{fn}() {{", "    local -a commands", "    commands=("]
    lines += [f"        '{c.name}:{_zq(c.help)}'" for c in cmds]
    lines += ["    )", "    local curcontext=\"$curcontext\" state line", "    _arguments -C \\"]
    lines += [f"        {_zsh_option(o)} \\" for o in top]
    lines += ["        '1: :->command' \\", "        '*:: :->args'",
              "    case $state in",
              "        command) _describe -t commands 'command' commands ;;",
              "        args)", "            case $words[1] in"]
    for c in cmds:
        specs = [_zsh_option(o) for o in c.options]
        for i, p in enumerate(c.positionals, 1):
            action = f"({' '.join(p.words)})" if p.words else "_files" if p.files else " "
            specs.append(f"'{'*' if p.many else i}:{_zq(p.name.lower())}:{action}'")
        lines.append(f"                {c.name}) _arguments " + " ".join(specs) + " ;;")
    lines += ["            esac ;;", "    esac", "}", f"compdef {fn} {prog}", ""]
    return "\n".join(lines)


# --- fish ---------------------------------------------------------------------------------------

def _fq(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(prog: str, condition: str, o: Option) -> str:
    parts = [f"complete -c {prog} -n {_fq(condition)}"]
    for flag in o.flags:
        parts.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
    if o.takes_value:
        parts.append("-rF" if o.files else f"-xa {_fq(' '.join(o.words))}" if o.words else "-x")
    parts.append(f"-d {_fq(o.help)}")
    return " ".join(parts)


def fish(prog: str, top: tuple[Option, ...], cmds: tuple[Command, ...]) -> str:
    first = "__fish_use_subcommand"
    lines = [f"# fish completion for {prog}; load with: {prog} completion fish | source",
             f"complete -c {prog} -f"]
    lines += [_fish_option(prog, first, o) for o in top]
    lines += [f"complete -c {prog} -n {first} -a {c.name} -d {_fq(c.help)}" for c in cmds]
    for c in cmds:
        seen = f"__fish_seen_subcommand_from {c.name}"
        lines += [_fish_option(prog, seen, o) for o in c.options]
        for p in c.positionals:
            if p.words:
                lines.append(f"complete -c {prog} -n {_fq(seen)} -xa {_fq(' '.join(p.words))}")
            elif p.files:
                lines.append(f"complete -c {prog} -n {_fq(seen)} -F")
    return "\n".join(lines) + "\n"


GENERATORS: dict[str, Callable[[str, tuple[Option, ...], tuple[Command, ...]], str]] = {
    "bash": bash, "zsh": zsh, "fish": fish,
}


def script(shell: str, top: argparse.ArgumentParser) -> str:
    """The completion script for `shell` of the command `top` parses."""
    options, cmds = commands(top)
    return GENERATORS[shell](top.prog, options, cmds)
