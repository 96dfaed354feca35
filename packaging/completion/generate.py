"""Write lsmguard's bash, zsh and fish completions from its argument parser, so that they
complete every command and every option the parser has (`make completions`). What an
option's value completes to is read from the parser too: its choices, or by kind (files,
directories, policy names, rule ids), the names coming at completion time from
`lsmguard __complete policies|rules`, which reads the set `lsmguard list` shows.

    python3 packaging/completion/generate.py [DIR]    # default: the directory of this script
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lsmguard.cli.parser import build_parser

HEADER = ("Generated from lsmguard's argument parser by packaging/completion/generate.py\n"
          "(`make completions`); tests/unit/test_completion.py fails when it no longer matches.")

# What a value completes to: ("choices", words) or one of these kinds.
FILES, DIRS, POLICIES, RULES, FREE = "files", "dirs", "policies", "rules", "free"


@dataclass
class Value:
    kind: str
    choices: list[str] = field(default_factory=list)
    label: str = "VALUE"


@dataclass
class Option:
    strings: list[str]
    help: str
    value: Value | None          # None: a flag
    repeatable: bool = False
    optional_value: bool = False


@dataclass
class Positional:
    value: Value
    variadic: bool              # nargs + or *: every further word


@dataclass
class Command:
    name: str
    help: str
    options: list[Option]
    positionals: list[Positional]


def value_of(command: str, action: argparse.Action) -> Value:
    label = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    if action.choices:
        return Value("choices", [str(c) for c in action.choices], label)
    if isinstance(action.metavar, str) and re.fullmatch(r"[a-z]+(\|[a-z]+)+", action.metavar):
        return Value("choices", action.metavar.split("|"), label)        # --access read|write
    if action.dest in ("policy", "stop"):
        return Value(POLICIES, label=label if action.metavar else "POLICY")
    if action.dest in ("rule", "rule_id"):
        return Value(RULES, label=label if action.metavar else "RULE")
    if action.dest == "policy_dir" or action.metavar == "DIR":
        return Value(DIRS, label=label)
    if action.dest == "cgroup":
        return Value(FREE, label=label)                                   # a cgroup path, not a file
    if action.metavar in ("PATH", "FILE", "FILE|DIR") or action.dest in ("targets", "output", "file", "key_file"):
        return Value(FILES, label=label)
    return Value(FREE, label=label)


def clean(text: str | None) -> str:
    return " ".join((text or "").split())


def model(parser: argparse.ArgumentParser | None = None) -> tuple[list[Option], list[Command]]:
    """The top-level options and every visible command, as the completions need them."""
    parser = parser or build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: clean(a.help) for a in sub._choices_actions}
    top = [Option(list(a.option_strings), clean(a.help), None) for a in parser._actions if a.option_strings]
    commands = []
    for name, p in sub.choices.items():
        if name not in helps:            # hidden: no help (`__complete`)
            continue
        options, positionals = [], []
        for action in p._actions:
            if action.option_strings:
                takes = action.nargs != 0
                options.append(Option(list(action.option_strings), clean(action.help),
                                      value_of(name, action) if takes else None,
                                      repeatable=isinstance(action, argparse._AppendAction),
                                      optional_value=action.nargs == "?"))
            else:
                positionals.append(Positional(value_of(name, action), action.nargs in ("+", "*")))
        commands.append(Command(name, helps[name], options, positionals))
    return top, commands


# -- bash -------------------------------------------------------------------------------

def bash_reply(value: Value) -> str:
    if value.kind == "choices":
        return f'COMPREPLY=($(compgen -W "{" ".join(value.choices)}" -- "$cur"))'
    if value.kind == FILES:
        return 'compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur"))'
    if value.kind == DIRS:
        return 'compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur"))'
    if value.kind in (POLICIES, RULES):
        return f'COMPREPLY=($(compgen -W "$(_lsmguard_names {value.kind})" -- "$cur"))'
    return "COMPREPLY=()"


def bash(top: list[Option], commands: list[Command]) -> str:
    words = " ".join([c.name for c in commands] + [s for o in top for s in o.strings])
    out = [f"# bash completion for lsmguard(8)", *(f"# {line}" for line in HEADER.splitlines()), "",
           "# Policy names or rule ids from the set `lsmguard list` shows.",
           "_lsmguard_names() {",
           '\t"${COMP_WORDS[0]}" __complete "$1" 2>/dev/null',
           "}", "",
           "# How many arguments (not options, nor their values) precede the word completed,",
           "# after the command at index $1; $2 lists the options that take a value.",
           "_lsmguard_npos() {",
           "\tlocal i n=0",
           '\tfor ((i = $1 + 1; i < COMP_CWORD; i++)); do',
           '\t\tcase ${COMP_WORDS[i]} in',
           '\t\t=) ;;',
           '\t\t-*) [[ " $2 " == *" ${COMP_WORDS[i]} "* && ${COMP_WORDS[i+1]} != "=" ]] && ((i++)) ;;',
           '\t\t*) [[ ${COMP_WORDS[i-1]} == "=" ]] || ((n++)) ;;',
           "\t\tesac",
           "\tdone",
           "\techo $n",
           "}", "",
           "_lsmguard() {",
           "\tlocal cur prev cmd at i n",
           "\tcur=${COMP_WORDS[COMP_CWORD]}",
           "\tprev=${COMP_WORDS[COMP_CWORD-1]}",
           '\t[[ $cur == "=" ]] && cur=""',
           '\t[[ $prev == "=" ]] && prev=${COMP_WORDS[COMP_CWORD-2]}',
           "\tcmd= at=",
           "\tfor ((i = 1; i < COMP_CWORD; i++)); do",
           "\t\tcase ${COMP_WORDS[i]} in -*) ;; *) cmd=${COMP_WORDS[i]} at=$i; break ;; esac",
           "\tdone",
           '\tif [[ -z $cmd ]]; then',
           f'\t\tCOMPREPLY=($(compgen -W "{words}" -- "$cur"))',
           "\t\treturn",
           "\tfi",
           "\tcase $cmd in"]
    for c in commands:
        valued = [o for o in c.options if o.value is not None]
        out.append(f"\t{c.name})")
        if valued:
            out.append("\t\tcase $prev in")
            for o in valued:
                assert o.value is not None
                out.append(f"\t\t{'|'.join(o.strings)}) {bash_reply(o.value)}; return ;;")
            out.append("\t\tesac")
        opts = " ".join(s for o in c.options for s in o.strings)
        out.append(f'\t\tif [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "{opts}" -- "$cur")); return; fi')
        if c.positionals:
            takes = " ".join(s for o in valued if not o.optional_value for s in o.strings)
            out.append(f'\t\tn=$(_lsmguard_npos "$at" "{takes}")')
            out.append("\t\tcase $n in")
            for index, p in enumerate(c.positionals):
                out.append(f"\t\t{'*' if p.variadic else index}) {bash_reply(p.value)} ;;")
            out.append("\t\tesac")
        out.append("\t\t;;")
    out += ["\tesac", "}", "complete -F _lsmguard lsmguard", ""]
    return "\n".join(out)


# -- zsh --------------------------------------------------------------------------------

def zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def zsh_help(text: str) -> str:
    return re.sub(r"([\[\]:\\])", r"\\\1", text)


def zsh_action(value: Value) -> str:
    if value.kind == "choices":
        return "(" + " ".join(value.choices) + ")"
    return {FILES: "_files", DIRS: "_files -/", POLICIES: "_lsmguard_policies", RULES: "_lsmguard_rules"}.get(
        value.kind, " ")


def zsh_option(o: Option) -> str:
    described = f"[{zsh_help(o.help)}]" if o.help else ""
    if o.value is None:
        tail = described
    else:
        label = zsh_help(o.value.label)
        tail = described + (f"::{label}:{zsh_action(o.value)}" if o.optional_value
                                           else f":{label}:{zsh_action(o.value)}")
        if not o.optional_value:
            tail = "=" + tail if any(s.startswith("--") for s in o.strings) and len(o.strings) == 1 else tail
    if "-h" in o.strings:
        prefix = "(- *)"
    elif o.repeatable:
        prefix = "*"
    elif len(o.strings) > 1:
        prefix = "(" + " ".join(o.strings) + ")"
    else:
        prefix = ""
    if len(o.strings) == 1:
        return zsh_quote(prefix + o.strings[0] + tail)
    return zsh_quote(prefix) + "{" + ",".join(o.strings) + "}" + zsh_quote(tail)


def zsh(top: list[Option], commands: list[Command]) -> str:
    out = ["#compdef lsmguard", "# zsh completion for lsmguard(8)", *(f"# {line}" for line in HEADER.splitlines()),
           "", "# Policy names or rule ids from the set `lsmguard list` shows.",
           "_lsmguard_policies() {",
           "\tlocal -a names",
           "\tnames=(${(f)\"$(_call_program policies lsmguard __complete policies 2>/dev/null)\"})",
           "\t_wanted policies expl 'policy' compadd -a names",
           "}",
           "_lsmguard_rules() {",
           "\tlocal -a names",
           "\tnames=(${(f)\"$(_call_program rules lsmguard __complete rules 2>/dev/null)\"})",
           "\t_wanted rules expl 'rule id' compadd -a names",
           "}", "",
           "_lsmguard_commands() {",
           "\tlocal -a commands=("]
    out += [f"\t\t{zsh_quote(c.name + ':' + c.help.replace(':', ' '))}" for c in commands]
    out += ["\t)", "\t_describe -t commands 'lsmguard command' commands", "}", ""]
    for c in commands:
        specs = [zsh_option(o) for o in c.options]
        for index, p in enumerate(c.positionals):
            spec = f"{'*' if p.variadic else index + 1}:{zsh_help(p.value.label)}:{zsh_action(p.value)}"
            specs.append(zsh_quote(spec))
        out.append(f"_lsmguard_{c.name}() {{")
        out.append("\t_arguments -s -S \\")
        out += [f"\t\t{s} \\" for s in specs[:-1]] + [f"\t\t{specs[-1]}"]
        out += ["}", ""]
    out += ["_lsmguard() {",
            "\tlocal curcontext=$curcontext state state_descr line",
            "\ttypeset -A opt_args",
            "\t_arguments -C \\"]
    out += [f"\t\t{zsh_option(o)} \\" for o in top]
    out += ["\t\t'1: :_lsmguard_commands' \\",
            "\t\t'*:: :->command' && return 0",
            "\tcase $state in",
            "\tcommand)",
            "\t\tcurcontext=${curcontext%:*:*}:lsmguard-$words[1]:",
            "\t\tcase $words[1] in"]
    out += [f"\t\t{c.name}) _lsmguard_{c.name} ;;" for c in commands]
    out += ["\t\tesac ;;", "\tesac", "}", "",
            "if [[ $funcstack[1] == _lsmguard ]]; then",
            '\t_lsmguard "$@"',
            "else",
            "\tcompdef _lsmguard lsmguard",
            "fi", ""]
    return "\n".join(out)


# -- fish -------------------------------------------------------------------------------

def fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish_value(value: Value) -> str:
    if value.kind == "choices":
        return f"-x -a {fish_quote(' '.join(value.choices))}"
    if value.kind == FILES:
        return "-r -F"
    if value.kind == DIRS:
        return "-x -a '(__fish_complete_directories)'"
    if value.kind in (POLICIES, RULES):
        return f"-x -a '(__lsmguard_names {value.kind})'"
    return "-x"


def fish_positional(value: Value) -> str:
    if value.kind == "choices":
        return f"-a {fish_quote(' '.join(value.choices))}"
    if value.kind in (POLICIES, RULES):
        return f"-a '(__lsmguard_names {value.kind})'"
    return "-F" if value.kind == FILES else "-a '(__fish_complete_directories)'" if value.kind == DIRS else "-a ''"


def fish_option(condition: str, o: Option) -> str:
    names = " ".join(f"-s {s[1:]}" if len(s) == 2 else f"-l {s[2:]}" for s in o.strings)
    value = "" if o.value is None else (" -f" if o.optional_value else " " + fish_value(o.value))
    return f"complete -c lsmguard -n {fish_quote(condition)} {names}{value} -d {fish_quote(o.help)}"


def fish(top: list[Option], commands: list[Command]) -> str:
    names = " ".join(c.name for c in commands)
    out = ["# fish completion for lsmguard(8)", *(f"# {line}" for line in HEADER.splitlines()), "",
           "# Policy names or rule ids from the set `lsmguard list` shows.",
           "function __lsmguard_names",
           "    lsmguard __complete $argv 2>/dev/null",
           "end", "",
           "# True when the word completed is argument number $argv[2] (from 0; `+`: that or a later one)",
           "# of command $argv[1]; the rest of $argv lists the options that take a value.",
           "function __lsmguard_argument",
           "    set -l tokens (commandline -opc)",
           "    set -l command $argv[1]",
           "    set -l want $argv[2]",
           "    set -l valued $argv[3..-1]",
           "    set -l count -1",
           "    set -l skip 0",
           "    for token in $tokens[2..-1]",
           "        if test $skip = 1",
           "            set skip 0",
           "        else if string match -q -- '-*' $token",
           "            contains -- $token $valued; and set skip 1",
           "        else if test $count = -1",
           "            test $token = $command; or return 1",
           "            set count 0",
           "        else",
           "            set count (math $count + 1)",
           "        end",
           "    end",
           "    test $count -ge 0; or return 1",
           "    if string match -q -- '*+' $want",
           "        test $count -ge (string trim -r -c + -- $want)",
           "    else",
           "        test $count -eq $want",
           "    end",
           "end", "",
           "complete -c lsmguard -f",
           f"set -l __lsmguard_commands {names}"]
    none = "not __fish_seen_subcommand_from $__lsmguard_commands"
    for o in top:
        out.append(fish_option(none, o).replace(fish_quote(none), f'"{none}"'))
    for c in commands:
        out.append(f'complete -c lsmguard -n "{none}" -a {c.name} -d {fish_quote(c.help)}')
    for c in commands:
        out += ["", f"# {c.name}"]
        seen = f"__fish_seen_subcommand_from {c.name}"
        out += [fish_option(seen, o) for o in c.options]
        takes = " ".join(s for o in c.options if o.value is not None and not o.optional_value for s in o.strings)
        for index, p in enumerate(c.positionals):
            condition = f"__lsmguard_argument {c.name} {index}{'+' if p.variadic else ''} {takes}".rstrip()
            out.append(f"complete -c lsmguard -n {fish_quote(condition)} {fish_positional(p.value)}")
    out.append("")
    return "\n".join(out)


FILES_WRITTEN = {"lsmguard": bash, "_lsmguard": zsh, "lsmguard.fish": fish}


def generate() -> dict[str, str]:
    top, commands = model()
    return {name: render(top, commands) for name, render in FILES_WRITTEN.items()}


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else Path(__file__).resolve().parent
    for name, text in generate().items():
        (directory / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
