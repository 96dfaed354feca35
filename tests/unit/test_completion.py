"""The bash, zsh and fish completions, run in the real shells: every command and every
option the parser has, value choices, files, and policy names and rule ids read at
completion time from the set `lsmguard list` shows (`lsmguard __complete`).

In the tree they are the files of packaging/completion; under the package's autopkgtest
(LSMGUARD_INSTALLED=1) the files the package installed, where each shell looks for them."""
from __future__ import annotations

import argparse
import fcntl
import importlib.util
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsmguard.cli import complete
from lsmguard.cli.parser import build_parser
from lsmguard.state.paths import Paths
from tests.packages import REPO

TREE_FILES = REPO / "packaging" / "completion"
INSTALLED = os.environ.get("LSMGUARD_INSTALLED") == "1"
FILES = {
    "bash": Path("/usr/share/bash-completion/completions/lsmguard") if INSTALLED else TREE_FILES / "lsmguard",
    "zsh": Path("/usr/share/zsh/vendor-completions/_lsmguard") if INSTALLED else TREE_FILES / "_lsmguard",
    "fish": Path("/usr/share/fish/vendor_completions.d/lsmguard.fish") if INSTALLED else TREE_FILES / "lsmguard.fish",
}
SHELLS = tuple(FILES)
# The lsmguard that the completions run: the one beside this python (the venv's, or /usr/bin's).
BIN = Path(sys.executable).parent

POLICY_A = """apiVersion: lsmguard.example.org/v1
kind: Policy
metadata: {name: completion-alpha}
spec:
  mode: audit
  rules:
    - {id: alpha-one, action: deny, exec: {paths: [/tmp/a]}}
    - {id: alpha-two, action: deny, exec: {paths: [/tmp/b]}}
---
apiVersion: lsmguard.example.org/v1
kind: Policy
metadata: {name: completion-beta}
spec:
  mode: audit
  rules:
    - {id: beta-one, action: audit, open: {paths: [/tmp/c]}}
"""


def generator():   # noqa: ANN201 - a module loaded by path
    spec = importlib.util.spec_from_file_location("completion_generate", REPO / "packaging/completion/generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def parser_commands() -> dict[str, set[str]]:
    """Every visible command and its option strings, walked from the parser itself."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    visible = {a.dest for a in sub._choices_actions}
    return {name: {s for a in p._actions for s in a.option_strings}
            for name, p in sub.choices.items() if name in visible}


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("completion") / "policies.d"
    directory.mkdir()
    (directory / "policy-a.yaml").write_text(POLICY_A)
    (directory / "broken.yaml").write_text("apiVersion: [\n")      # a file that does not parse adds nothing
    return directory


def shell_env(policy_dir: Path) -> dict[str, str]:
    home = policy_dir.parent / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "TERM": "xterm", "LC_ALL": "C.UTF-8",
            "LSMGUARD_POLICY_DIR": str(policy_dir), "LSMGUARD_RUN_DIR": str(policy_dir.parent / "run"),
            "LSMGUARD_PIN_ROOT": str(policy_dir.parent / "pins"), "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data")}


def bash_complete(line: str, env: dict[str, str]) -> list[str]:
    """COMP_WORDS as bash splits the line (a trailing space starts an empty word, `=` is a word)."""
    words = [w for w in re.split(r"(=)| +", line) if w] + ([""] if line.endswith((" ", "=")) else [])
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _lsmguard; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", FILES["bash"], *words],
                          capture_output=True, text=True, env=env, timeout=60, check=True)
    return [w for w in proc.stdout.splitlines() if w]


def fish_complete(line: str, env: dict[str, str]) -> list[str]:
    proc = subprocess.run(["fish", "--no-config", "-c", 'source $argv[1]; complete -C"$LINE"', FILES["fish"]],
                          capture_output=True, text=True, env={**env, "LINE": line}, timeout=60, check=True)
    return [w.split("\t")[0] for w in proc.stdout.splitlines() if w]


# zsh completes only inside the line editor, so the test types into an interactive zsh on a
# pseudo-terminal: compinit loads the completion from fpath as zsh would, and a compadd
# wrapper prints every match the completion system adds before adding it.
ZSH_SETUP = r"""
PS1='%% '; RPS1=''
fpath=({fpath} $fpath)
autoload -Uz compinit && compinit -u -D
unsetopt AUTO_LIST AUTO_MENU LIST_AMBIGUOUS BEEP
compadd() {{
	if [[ ${{@[1,(i)(-|--)]}} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
	local -a __hits; local __h
	builtin compadd -A __hits "$@"
	for __h in $__hits; do print -r -- "<m>$__h</m>"; done
	builtin compadd "$@"
}}
_capture() {{ zle complete-word; print -r -- "<do""ne>"; }}
zle -N _capture; bindkey '^I' _capture
print -r -- "<rea""dy>"
"""


class Zsh:
    def __init__(self, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 200, 1000, 0, 0))
        self.proc = subprocess.Popen(["zsh", "-f", "-i"], stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.buffer = b""
        os.write(self.master, ZSH_SETUP.format(fpath=FILES["zsh"].parent).encode())
        self.read_until(b"<ready>")

    def read_until(self, marker: bytes, timeout: float = 60) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"zsh gave no {marker!r}:\n{self.buffer.decode(errors='replace')}")
            self.buffer += os.read(self.master, 65536)
        out, _, self.buffer = self.buffer.partition(marker)
        return out

    def complete(self, line: str) -> list[str]:
        os.write(self.master, line.encode() + b"\t")
        out = self.read_until(b"<done>").decode(errors="replace")
        os.write(self.master, b"\x15")          # kill the line for the next one
        return re.findall(r"<m>(.*?)</m>", out)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.master)


@pytest.fixture(scope="module")
def completer(policy_dir: Path) -> Iterator[dict[str, object]]:
    for shell in SHELLS:
        if shutil.which(shell) is None:
            pytest.fail(f"{shell} is not installed (tests/lab/install-deps installs it)", pytrace=False)
    env = shell_env(policy_dir)
    zsh = Zsh(env)
    try:
        yield {"bash": lambda line: bash_complete(line, env), "zsh": zsh.complete,
               "fish": lambda line: fish_complete(line, env)}
    finally:
        zsh.close()


def test_the_completion_files_are_the_parser_s() -> None:
    """What `make completions` writes from the parser is what is shipped: an option added
    to the parser and not to the completions fails here."""
    for name, text in generator().generate().items():
        shipped = {"lsmguard": FILES["bash"], "_lsmguard": FILES["zsh"], "lsmguard.fish": FILES["fish"]}[name]
        assert shipped.read_text() == text, f"{shipped} is stale: run `make completions`"


def test_the_complete_helper_names_policies_and_rules(policy_dir: Path) -> None:
    sources = complete.sources_shown(Paths(policy_dir, policy_dir.parent / "run", policy_dir.parent / "pins"))
    assert complete.names(sources, "policies") == ["completion-alpha", "completion-beta"]
    assert complete.names(sources, "rules") == ["alpha-one", "alpha-two", "beta-one"]
    proc = subprocess.run([BIN / "lsmguard", "__complete", "rules", "--policy-dir", policy_dir],
                          capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["alpha-one", "alpha-two", "beta-one"]
    assert "__complete" not in subprocess.run([BIN / "lsmguard", "--help"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_every_command_and_every_option_completes(shell: str, completer: dict) -> None:
    commands = parser_commands()
    assert "--policy" in commands["remove"] and "rule_id" not in commands["remove"]
    complete_line = completer[shell]
    assert set(complete_line("lsmguard ")) >= set(commands)
    assert "__complete" not in complete_line("lsmguard ")
    assert set(complete_line("lsmguard -")) >= {"-h", "--help", "--version"}
    for command, options in commands.items():
        offered = set(complete_line(f"lsmguard {command} -"))
        assert options <= offered, f"{shell}: lsmguard {command}: {sorted(options - offered)} not offered"


@pytest.mark.parametrize("shell", SHELLS)
def test_policy_names_and_rule_ids_come_from_the_policies(shell: str, completer: dict, policy_dir: Path) -> None:
    complete_line = completer[shell]
    assert complete_line("lsmguard rem") == ["remove"]
    assert sorted(complete_line("lsmguard remove ")) == ["alpha-one", "alpha-two", "beta-one"]
    assert sorted(complete_line("lsmguard remove alpha-one --policy ")) == ["completion-alpha", "completion-beta"]
    assert sorted(complete_line("lsmguard remove --policy completion-b")) == ["completion-beta"]
    assert sorted(complete_line("lsmguard audit --rule be")) == ["beta-one"]
    assert sorted(complete_line("lsmguard deny exec /tmp/x --policy completion-a")) == ["completion-alpha"]
    assert sorted(complete_line("lsmguard learn --stop ")) == ["completion-alpha", "completion-beta"]


@pytest.mark.parametrize("shell", SHELLS)
def test_values_complete_from_choices_and_files(shell: str, completer: dict, policy_dir: Path) -> None:
    complete_line = completer[shell]
    assert sorted(complete_line("lsmguard deny ")) == ["bind", "chmod", "connect", "exec", "listen", "open"]
    assert sorted(complete_line("lsmguard audit --decision ")) == ["audit", "deny", "would-deny"]
    assert sorted(complete_line("lsmguard allow open /etc/x --access ")) == ["read", "write"]
    assert sorted(complete_line("lsmguard audit --since today --op ch")) == ["chmod", "chown"]
    for line in (f"lsmguard check {policy_dir}/poli", f"lsmguard deny exec {policy_dir}/poli",
                 f"lsmguard test {policy_dir}/x.yaml --since today {policy_dir}/poli"):
        found = complete_line(line)
        assert len(found) == 1 and found[0].endswith("policy-a.yaml"), (line, found)
