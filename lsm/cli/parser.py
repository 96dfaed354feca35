"""The `lsmguard` command line: its parser. Each command group's handlers live in
their own module of this package."""
from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from lsmguard import __version__
from lsmguard.errors import ExitStatus, LsmguardError

EXIT_CODES = ExitStatus.describe()
DEFAULT_COLLAPSE = 10   # suggest --collapse


@dataclass(frozen=True)
class Handler:
    """A command's handler, imported when the command runs: `--help`, `status` or `check` do
    not pay for the kernel, journal and learning modules other commands need."""
    module: str    # in lsmguard.cli
    name: str

    def resolve(self) -> Callable[[argparse.Namespace], int]:
        try:
            module = importlib.import_module(f"lsmguard.cli.{self.module}")
        except ImportError as error:   # a dependency missing: say which, not a traceback
            raise LsmguardError(f"cannot run this command: {error} (is lsmguard's package complete?)") from None
        func: Callable[[argparse.Namespace], int] = getattr(module, self.name)
        return func

    def __call__(self, args: argparse.Namespace) -> int:
        return int(self.resolve()(args))

# One example or more for every command, shown at the end of its --help (tests/unit/cli walks the parser).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "doctor": ("sudo lsmguard doctor",),
    "check": ("lsmguard check /etc/lsmguard/policies.d", "lsmguard check web.yaml db.yaml --json",
              "lsmguard suggest --policy learn-web | lsmguard check -"),
    "apply": ("sudo lsmguard apply", "sudo lsmguard apply ./candidate.d"),
    "list": ("sudo lsmguard list", "lsmguard list --json --policy-dir ./policies.d"),
    "status": ("lsmguard status", "lsmguard status --json"),
    "unload": ("sudo systemctl stop lsmguard && sudo lsmguard unload",),
    "deny": ("sudo lsmguard deny exec '/tmp/**'", "sudo lsmguard deny open /etc/shadow --access write",
             "sudo lsmguard deny connect 203.0.113.0/24 --port 3333-3334 --proto tcp",
             "sudo lsmguard deny bind 4444 --proto tcp"),
    "allow": ("sudo lsmguard allow connect 10.0.0.0/8 --port 5432 --exe /usr/sbin/nginx",
              "sudo lsmguard allow listen 80 443 --exe /usr/sbin/nginx"),
    "remove": ("sudo lsmguard remove deny-exec-1", "sudo lsmguard remove allow-connect-1 --policy local-allow-nginx"),
    "audit": ("sudo lsmguard audit --since today --decision deny", "sudo lsmguard audit -b -u nginx -n 20 --details",
              "lsmguard audit --directory /var/log/journal/remote --json"),
    "learn": ("sudo lsmguard learn --unit webapp", "sudo lsmguard learn --stop learn-webapp-service"),
    "suggest": ("sudo lsmguard suggest --policy learn-webapp-service -o webapp.yaml",
                "sudo lsmguard suggest --exe /usr/sbin/nginx --since -1d --interactive"),
    "test": ("sudo lsmguard test webapp.yaml --since -1d",),
    "lock": ("sudo lsmguard lock --key-file /root/lsmguard.key",),
    "unlock": ("sudo lsmguard unlock --key-file /root/lsmguard.key",),
    "daemon": ("sudo systemctl start lsmguard    # runs `lsmguard daemon`",),
}


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions wrapped to the terminal; a title over indented lines (the examples) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            if all(line.startswith("  ") for line in paragraph.splitlines()[1:]) and "\n" in paragraph:
                paragraphs.append(indent + paragraph.replace("\n", "\n" + indent))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


def _uid(text: str) -> int | str:
    """A uid (or gid) as a number, or a user (group) name for the policy to resolve (checked with the rest of it)."""
    return int(text) if text.isascii() and text.isdigit() else text   # "²" and "٨٠" are digits to str


def epilog(name: str) -> str:
    return f"example{'s' if len(EXAMPLES[name]) > 1 else ''}:\n" + \
        "\n".join(f"  {line}" for line in EXAMPLES[name]) + "\n\n" + EXIT_CODES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsmguard", description="Enforce YAML security policies with BPF LSM programs.", epilog=EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"lsmguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, description: str, func: object, json_output: bool = True,
                policy_dir: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description, epilog=epilog(name),
                           formatter_class=HelpFormatter)
        if json_output:
            p.add_argument("--json", action="store_true", help="print the result as JSON")
        if policy_dir:
            p.add_argument("--policy-dir", metavar="DIR",
                           help="policy directory (default /etc/lsmguard/policies.d, or $LSMGUARD_POLICY_DIR)")
        p.set_defaults(func=func)
        return p

    command("doctor", "check that this host can enforce BPF LSM policy",
            "Check securityfs, BPF LSM, BTF, capabilities, bpffs, lockdown and journald, then load, attach and "
            "detach a minimal BPF LSM program: exit 0 only when enforcement can work, with the fix for each "
            "finding otherwise.", Handler("doctor", "cmd_doctor"))
    check = command("check", "validate policy files or directories",
                    "Validate policies: exit 0 when valid (warnings allowed), 2 with every error listed as "
                    "file:line:column: field: message.", Handler("policy", "cmd_check"))
    check.add_argument("paths", nargs="+", metavar="FILE|DIR", help="policy files, or directories of *.yaml")
    apply = command("apply", "apply the policy directory, or the given files, to the kernel",
                    "Load and pin lsmguard if needed, then replace the policy set in force atomically. With no "
                    "argument, the policy directory; with files or directories, exactly those (not saved).",
                    Handler("policy", "cmd_apply"), policy_dir=True)
    apply.add_argument("paths", nargs="*", metavar="FILE|DIR", help="policy files or directories")
    command("list", "list the rules in force with their hit counts",
            "List every rule in force: policy, mode, id, action, operation, objects and how often it matched "
            "(hit counts need root).", Handler("policy", "cmd_list"), policy_dir=True)
    command("status", "show whether lsmguard is loaded and what it enforces",
            "Loaded programs, policies and rules in force, kernel counters (denials, events lost), and the "
            "daemon's state. Exit 0 when lsmguard is loaded, 3 when it is not (as aa-status and `systemctl "
            "is-active` answer), whatever else it prints.", Handler("policy", "cmd_status"))
    command("unload", "detach every lsmguard program and remove its pins",
            "Stop enforcing: detach the programs and remove /sys/fs/bpf/lsmguard. The daemon must be stopped "
            "first.", Handler("policy", "cmd_unload"), json_output=False)
    for action, verb in (("deny", "refuse"), ("allow", "allow-list")):
        p = command(action, f"{verb} an operation now and persist the rule",
                    f"Add {'an' if action == 'allow' else 'a'} {action} rule to a policy managed by lsmguard "
                    "(default policy: "
                    f"{'local' if action == 'deny' else 'local-allow, created with default: deny'}), in force at "
                    "once through the pinned maps and saved to the policy directory; all or nothing.",
                    Handler("rules", "cmd_rule"), policy_dir=True)
        p.set_defaults(action=action)
        p.add_argument("operation", choices=("exec", "open", "chmod", "connect", "bind", "listen"))
        p.add_argument("targets", nargs="+", metavar="TARGET",
                       help="paths (/a/b or /a/**); for connect: CIDRs, unix socket paths or @abstract names; "
                            "for bind and listen: local ports or ranges (8080, 8000-8099), on any address")
        p.add_argument("--access", action="append", metavar="read|write", help="open: which access (default both)")
        p.add_argument("--port", action="append", metavar="PORT[-PORT]", help="connect: ports or ranges")
        p.add_argument("--proto", choices=("tcp", "udp", "any"), help="connect and bind: protocol (default any)")
        p.add_argument("--exe", action="append", metavar="PATH",
                       help="only for processes running PATH (and descendants)")
        p.add_argument("--cgroup", action="append", metavar="PATH", help="only for processes in this cgroup")
        p.add_argument("--uid", action="append", type=_uid, metavar="UID|USER",
                       help="only for this effective uid (a user name is resolved when the policy is loaded)")
        p.add_argument("--gid", action="append", type=_uid, metavar="GID|GROUP",
                       help="only for this effective gid (a group name is resolved when the policy is loaded)")
        p.add_argument("--policy", metavar="NAME", help="the policy to add the rule to")
        p.add_argument("--audit-only", action="store_true",
                       help="put the rule in an audit-mode policy: journal would-deny, refuse nothing")
    remove = command("remove", "remove a rule added with allow or deny",
                     "Remove one rule from a policy managed by lsmguard, in force at once and saved.",
                     Handler("rules", "cmd_remove"), policy_dir=True)
    remove.add_argument("rule_id", metavar="RULE_ID")
    remove.add_argument("--policy", metavar="NAME", help="the policy holding the rule, when several do")
    aud = command("audit", "review denials and audited accesses in the journal",
                  "Show lsmguard's journal records (denials, would-denials, audits, losses, what the lock "
                  "refused, policies the daemon rejected), oldest first. Times as journalctl takes them.",
                  Handler("audit", "cmd_audit"))
    add_journal_range(aud)
    aud.add_argument("-n", "--lines", type=int, metavar="N", help="only the N newest records")
    aud.add_argument("-b", "--boot", nargs="?", const="0", metavar="ID",
                     help="only this boot's records, or a boot's: its ID, or an offset as journalctl -b takes "
                          "it (-1 the boot before, 1 the first in the journal)")
    aud.add_argument("--op", choices=("exec", "mmap", "open", "chmod", "connect", "bind", "listen", "link", "rename",
                                      "truncate", "unlink", "create", "mount", "chown", "setxattr"),
                     help="only records of this operation")
    aud.add_argument("--decision", choices=("deny", "would-deny", "audit"), help="only records of this decision")
    aud.add_argument("--policy", metavar="NAME", help="only records of this policy")
    aud.add_argument("--rule", metavar="ID", help="only records of this rule (\"(default)\": a policy's default)")
    aud.add_argument("--pid", type=int, help="only records of this process")
    aud.add_argument("--uid", type=int, help="the process's effective uid")
    aud.add_argument("--exe", metavar="PATH", help="the process's executable, as records write it (a byte that is "
                     "not printable UTF-8 as \\xNN)")
    aud.add_argument("-u", "--unit", metavar="NAME", help="the process's systemd unit (.service when no suffix)")
    aud.add_argument("--cgroup", metavar="PATH", help="the process's cgroup, or one below it")
    aud.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    aud.add_argument("--details", "-d", action="store_true",
                     help="under each record, its process's executable and hash, lineage, unit and cgroup, "
                          "the file's hash, and for drift who wrote the file")
    lrn = command("learn", "record everything a subject does, to suggest a policy from it",
                  "Put in force (and save) a learning policy for the subject: audit mode, default: deny for the "
                  "operations, so each access the subject makes is journaled as would-deny and nothing is "
                  "refused. `lsmguard suggest --policy NAME` turns the records into a policy; "
                  "`lsmguard learn --stop NAME` removes it.", Handler("learn", "cmd_learn"), policy_dir=True)
    add_subject(lrn)
    lrn.add_argument("--operations", metavar="LIST",
                     help="comma-separated: exec,open,chmod,connect,bind,listen (default: all of them)")
    lrn.add_argument("--name", metavar="NAME", help="the learning policy's name (default learn-SUBJECT)")
    lrn.add_argument("--stop", metavar="NAME", help="remove the learning policy NAME instead")
    sug = command("suggest", "write a policy allowing what a subject was recorded doing",
                  "Read lsmguard's records (deny, would-deny, audit) of a learning policy or a subject and write "
                  "a default: deny policy whose allow rules cover what was observed, each with a comment saying "
                  "how often and by which executables; what a deny rule in force refuses, and drift, is never "
                  "allowed. The output passes `lsmguard check` with no warning.", Handler("suggest", "cmd_suggest"),
                  json_output=False, policy_dir=True)
    sug.add_argument("--policy", metavar="NAME", help="the records of this (learning) policy")
    add_subject(sug)
    add_journal_range(sug)
    sug.add_argument("-o", "--output", metavar="FILE", help="write the policy here (default: standard output)")
    sug.add_argument("--name", metavar="NAME", help="the suggested policy's name")
    sug.add_argument("--enforce", action="store_true", help="mode: enforce (default: audit)")
    sug.add_argument("--collapse", type=int, default=DEFAULT_COLLAPSE, metavar="N",
                     help="allow dir/** for a directory with N or more observed entries "
                          f"(default {DEFAULT_COLLAPSE}; 0: never by count)")
    sug.add_argument("--no-packages", action="store_true",
                     help="do not allow package-managed trees (dir/** owned whole by one package)")
    sug.add_argument("--cidrs", action="store_true",
                     help="allow the observed hosts' /24 (IPv4) and /64 (IPv6) instead of the hosts")
    sug.add_argument("--operations", metavar="LIST", help="the operations default: deny governs "
                     "(default: the learning policy's, or those observed)")
    sug.add_argument("--interactive", "-i", action="store_true",
                     help="for each rule: accept, refuse, widen to the parent /**, or edit (needs a terminal)")
    tst = command("test", "replay recorded accesses through candidate policies",
                  "Replay every lsmguard access record in the range, with its process context, through the "
                  "reference evaluator with the candidate policies, and list what they would refuse, grouped and "
                  "counted, with the rule or default refusing it. Exit 0: nothing would be refused; 1: something "
                  "would; 2: bad input.", Handler("replay", "cmd_test"))
    tst.add_argument("paths", nargs="+", metavar="FILE|DIR", help="candidate policy files or directories")
    add_journal_range(tst)
    lk = command("lock", "guard lsmguard's maps, links, pins and daemon until unlocked",
                 "Ask the daemon to lock: until `lsmguard unlock` with the key printed now, or a reboot, no other "
                 "process may write lsmguard's maps, take its links, unlink its pins, signal or trace the daemon, "
                 "or load BPF programs that override a hook's return. Policy changes are refused meanwhile.",
                 Handler("lock", "cmd_lock"))
    lk.add_argument("--key-file", metavar="FILE", help="write the key to FILE (new, mode 0600) instead of printing it")
    un = command("unlock", "lift the lock with its key",
                 "Ask the daemon to unlock; the key is read from --key-file, or standard input.",
                 Handler("lock", "cmd_unlock"))
    un.add_argument("--key-file", metavar="FILE", help="read the key from FILE")
    command("daemon", "run the enforcement daemon (lsmguard.service)",
            "Load or adopt the pinned programs, apply the policy directory, pump events to journald, reload "
            "on SIGHUP; on SIGTERM exit leaving enforcement pinned.", Handler("daemon", "cmd_daemon"),
            json_output=False, policy_dir=True)
    # Hidden (no help, so not listed): the shell completions' source of policy names and rule ids.
    hidden = sub.add_parser("__complete", add_help=False)
    hidden.add_argument("what", choices=("policies", "rules"))
    hidden.add_argument("--policy-dir", metavar="DIR")
    hidden.set_defaults(func=Handler("complete", "cmd_complete"))
    return parser


def add_subject(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exe", action="append", metavar="PATH", help="processes running PATH, and their descendants")
    p.add_argument("--unit", action="append", metavar="NAME", help="a systemd unit's processes (its cgroup)")
    p.add_argument("--cgroup", action="append", metavar="PATH", help="processes in this cgroup and below")


def add_journal_range(p: argparse.ArgumentParser) -> None:
    """--since, --until and where the journal is: audit, suggest and test take them alike."""
    p.add_argument("-S", "--since", metavar="TIME",
                   help="2026-11-21 10:00, 10:00, yesterday 10:00, today, -10m, 2h ago, @EPOCH, ... UTC")
    p.add_argument("-U", "--until", metavar="TIME")
    p.add_argument("--file", action="append", metavar="FILE", help="read this journal file (repeatable)")
    p.add_argument("-D", "--directory", metavar="DIR", help="read the journal in DIR (a collector's)")
