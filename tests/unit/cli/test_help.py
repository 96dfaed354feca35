"""Every command's --help ends with an example of it, and reads as English."""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

from lsmguard.cli.parser import build_parser
from lsmguard.cli.timespec import join_dashed_values


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """The commands users type: not the hidden ones the shells' completions call (`__complete`)."""
    parser = build_parser()
    [choices] = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert isinstance(choices, dict)
    return {name: sub for name, sub in choices.items() if not name.startswith("__")}


def test_every_command_has_an_example_of_itself() -> None:
    commands = subcommands()
    assert {"check", "list", "status", "deny", "allow", "audit", "lock", "daemon"} <= set(commands)
    for name, parser in commands.items():
        text = parser.format_help()
        assert "\nexample" in text, name
        examples = text.split("\nexample", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        assert examples and all(line.startswith("  ") for line in examples), (name, examples)
        for line in examples:     # each one a command that runs this one (after sudo, a pipe, or systemctl)
            words = shlex.split(line.split("#", 1)[0])
            assert "lsmguard" in words, (name, line)
            assert name in words[words.index("lsmguard") + 1:] or name == "daemon", (name, line)
        assert text.rstrip().endswith("or lsmguard is locked)"), name   # the exit statuses stay last


def test_every_example_parses() -> None:
    parser = build_parser()
    for name, sub in subcommands().items():
        examples = sub.format_help().split("\nexample", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
        for line in examples:
            for part in line.split("#", 1)[0].replace("&&", "|").split("|"):
                words = shlex.split(part)
                if words[:1] == ["sudo"]:
                    words = words[1:]
                if words[:1] == ["lsmguard"]:
                    parser.parse_args(join_dashed_values(words[1:]))     # exits 2 on a bad example


def test_articles() -> None:
    allow = subcommands()["allow"].format_help()
    assert "Add an allow rule" in allow and "a allow" not in allow
    assert "Add a deny rule" in subcommands()["deny"].format_help()


def test_help_exits_0_from_the_installed_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "lsmguard", "status", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "examples:\n  lsmguard status\n" in proc.stdout


def test_every_command_resolves_to_its_handler() -> None:
    """Commands import their modules when they run: a misspelt module or function would
    otherwise surface only when a user ran that command."""
    from lsmguard.cli.parser import Handler
    handlers = [sub.get_default("func") for sub in subcommands().values()]
    parser = build_parser()
    [choices] = [a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    handlers += [sub.get_default("func") for name, sub in choices.items() if name.startswith("__")]
    assert handlers and all(isinstance(h, Handler) for h in handlers)
    for handler in handlers:
        assert callable(handler.resolve()), handler


def test_a_command_whose_module_cannot_load_says_so_without_a_traceback(tmp_path) -> None:  # noqa: ANN001
    """A dependency missing on the host (python3-systemd, say): a message and exit 1."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['systemd'] = None\nsys.modules['systemd.journal'] = None\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "lsmguard", "audit", "-n", "1"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("lsmguard: cannot run this command: ") and "systemd" in proc.stderr, proc.stderr
