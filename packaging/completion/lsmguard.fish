# fish completion for lsmguard(8)
# Generated from lsmguard's argument parser by packaging/completion/generate.py
# (`make completions`); tests/unit/test_completion.py fails when it no longer matches.

# Policy names or rule ids from the set `lsmguard list` shows.
function __lsmguard_names
    lsmguard __complete $argv 2>/dev/null
end

# True when the word completed is argument number $argv[2] (from 0; `+`: that or a later one)
# of command $argv[1]; the rest of $argv lists the options that take a value.
function __lsmguard_argument
    set -l tokens (commandline -opc)
    set -l command $argv[1]
    set -l want $argv[2]
    set -l valued $argv[3..-1]
    set -l count -1
    set -l skip 0
    for token in $tokens[2..-1]
        if test $skip = 1
            set skip 0
        else if string match -q -- '-*' $token
            contains -- $token $valued; and set skip 1
        else if test $count = -1
            test $token = $command; or return 1
            set count 0
        else
            set count (math $count + 1)
        end
    end
    test $count -ge 0; or return 1
    if string match -q -- '*+' $want
        test $count -ge (string trim -r -c + -- $want)
    else
        test $count -eq $want
    end
end

complete -c lsmguard -f
set -l __lsmguard_commands doctor check apply list status unload deny allow remove audit learn suggest test lock unlock daemon
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -l version -d 'show program\'s version number and exit'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a doctor -d 'check that this host can enforce BPF LSM policy'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a check -d 'validate policy files or directories'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a apply -d 'apply the policy directory, or the given files, to the kernel'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a list -d 'list the rules in force with their hit counts'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a status -d 'show whether lsmguard is loaded and what it enforces'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a unload -d 'detach every lsmguard program and remove its pins'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a deny -d 'refuse an operation now and persist the rule'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a allow -d 'allow-list an operation now and persist the rule'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a remove -d 'remove a rule added with allow or deny'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a audit -d 'review denials and audited accesses in the journal'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a learn -d 'record everything a subject does, to suggest a policy from it'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a suggest -d 'write a policy allowing what a subject was recorded doing'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a test -d 'replay recorded accesses through candidate policies'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a lock -d 'guard lsmguard\'s maps, links, pins and daemon until unlocked'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a unlock -d 'lift the lock with its key'
complete -c lsmguard -n "not __fish_seen_subcommand_from $__lsmguard_commands" -a daemon -d 'run the enforcement daemon (lsmguard.service)'

# doctor
complete -c lsmguard -n '__fish_seen_subcommand_from doctor' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from doctor' -l json -d 'print the result as JSON'

# check
complete -c lsmguard -n '__fish_seen_subcommand_from check' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from check' -l json -d 'print the result as JSON'
complete -c lsmguard -n '__lsmguard_argument check 0+' -F

# apply
complete -c lsmguard -n '__fish_seen_subcommand_from apply' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from apply' -l json -d 'print the result as JSON'
complete -c lsmguard -n '__fish_seen_subcommand_from apply' -l policy-dir -x -a '(__fish_complete_directories)' -d 'policy directory (default /etc/lsmguard/policies.d, or $LSMGUARD_POLICY_DIR)'
complete -c lsmguard -n '__lsmguard_argument apply 0+ --policy-dir' -F

# list
complete -c lsmguard -n '__fish_seen_subcommand_from list' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from list' -l json -d 'print the result as JSON'
complete -c lsmguard -n '__fish_seen_subcommand_from list' -l policy-dir -x -a '(__fish_complete_directories)' -d 'policy directory (default /etc/lsmguard/policies.d, or $LSMGUARD_POLICY_DIR)'

# status
complete -c lsmguard -n '__fish_seen_subcommand_from status' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from status' -l json -d 'print the result as JSON'

# unload
complete -c lsmguard -n '__fish_seen_subcommand_from unload' -s h -l help -d 'show this help message and exit'

# deny
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -l json -d 'print the result as JSON'
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -l policy-dir -x -a '(__fish_complete_directories)' -d 'policy directory (default /etc/lsmguard/policies.d, or $LSMGUARD_POLICY_DIR)'
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -l access -x -a 'read write' -d 'open: which access (default both)'
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -l port -x -d 'connect: ports or ranges'
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -l proto -x -a 'tcp udp any' -d 'connect and bind: protocol (default any)'
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -l exe -r -F -d 'only for processes running PATH (and descendants)'
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -l cgroup -x -d 'only for processes in this cgroup'
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -l uid -x -d 'only for this effective uid (a user name is resolved when the policy is loaded)'
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -l gid -x -d 'only for this effective gid (a group name is resolved when the policy is loaded)'
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -l policy -x -a '(__lsmguard_names policies)' -d 'the policy to add the rule to'
complete -c lsmguard -n '__fish_seen_subcommand_from deny' -l audit-only -d 'put the rule in an audit-mode policy: journal would-deny, refuse nothing'
complete -c lsmguard -n '__lsmguard_argument deny 0 --policy-dir --access --port --proto --exe --cgroup --uid --gid --policy' -a 'exec open chmod connect bind listen'
complete -c lsmguard -n '__lsmguard_argument deny 1+ --policy-dir --access --port --proto --exe --cgroup --uid --gid --policy' -F

# allow
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -l json -d 'print the result as JSON'
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -l policy-dir -x -a '(__fish_complete_directories)' -d 'policy directory (default /etc/lsmguard/policies.d, or $LSMGUARD_POLICY_DIR)'
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -l access -x -a 'read write' -d 'open: which access (default both)'
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -l port -x -d 'connect: ports or ranges'
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -l proto -x -a 'tcp udp any' -d 'connect and bind: protocol (default any)'
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -l exe -r -F -d 'only for processes running PATH (and descendants)'
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -l cgroup -x -d 'only for processes in this cgroup'
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -l uid -x -d 'only for this effective uid (a user name is resolved when the policy is loaded)'
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -l gid -x -d 'only for this effective gid (a group name is resolved when the policy is loaded)'
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -l policy -x -a '(__lsmguard_names policies)' -d 'the policy to add the rule to'
complete -c lsmguard -n '__fish_seen_subcommand_from allow' -l audit-only -d 'put the rule in an audit-mode policy: journal would-deny, refuse nothing'
complete -c lsmguard -n '__lsmguard_argument allow 0 --policy-dir --access --port --proto --exe --cgroup --uid --gid --policy' -a 'exec open chmod connect bind listen'
complete -c lsmguard -n '__lsmguard_argument allow 1+ --policy-dir --access --port --proto --exe --cgroup --uid --gid --policy' -F

# remove
complete -c lsmguard -n '__fish_seen_subcommand_from remove' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from remove' -l json -d 'print the result as JSON'
complete -c lsmguard -n '__fish_seen_subcommand_from remove' -l policy-dir -x -a '(__fish_complete_directories)' -d 'policy directory (default /etc/lsmguard/policies.d, or $LSMGUARD_POLICY_DIR)'
complete -c lsmguard -n '__fish_seen_subcommand_from remove' -l policy -x -a '(__lsmguard_names policies)' -d 'the policy holding the rule, when several do'
complete -c lsmguard -n '__lsmguard_argument remove 0 --policy-dir --policy' -a '(__lsmguard_names rules)'

# audit
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l json -d 'print the result as JSON'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -s S -l since -x -d '2026-11-21 10:00, 10:00, yesterday 10:00, today, -10m, 2h ago, @EPOCH, ... UTC'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -s U -l until -x -d ''
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l file -r -F -d 'read this journal file (repeatable)'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -s D -l directory -x -a '(__fish_complete_directories)' -d 'read the journal in DIR (a collector\'s)'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -s n -l lines -x -d 'only the N newest records'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -s b -l boot -f -d 'only this boot\'s records, or a boot\'s: its ID, or an offset as journalctl -b takes it (-1 the boot before, 1 the first in the journal)'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l op -x -a 'exec mmap open chmod connect bind listen link rename truncate unlink create mount chown setxattr' -d 'only records of this operation'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l decision -x -a 'deny would-deny audit' -d 'only records of this decision'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l policy -x -a '(__lsmguard_names policies)' -d 'only records of this policy'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l rule -x -a '(__lsmguard_names rules)' -d 'only records of this rule ("(default)": a policy\'s default)'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l pid -x -d 'only records of this process'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l uid -x -d 'the process\'s effective uid'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l exe -r -F -d 'the process\'s executable, as records write it (a byte that is not printable UTF-8 as \\xNN)'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -s u -l unit -x -d 'the process\'s systemd unit (.service when no suffix)'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l cgroup -x -d 'the process\'s cgroup, or one below it'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l follow -s f -d 'keep printing new records'
complete -c lsmguard -n '__fish_seen_subcommand_from audit' -l details -s d -d 'under each record, its process\'s executable and hash, lineage, unit and cgroup, the file\'s hash, and for drift who wrote the file'

# learn
complete -c lsmguard -n '__fish_seen_subcommand_from learn' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from learn' -l json -d 'print the result as JSON'
complete -c lsmguard -n '__fish_seen_subcommand_from learn' -l policy-dir -x -a '(__fish_complete_directories)' -d 'policy directory (default /etc/lsmguard/policies.d, or $LSMGUARD_POLICY_DIR)'
complete -c lsmguard -n '__fish_seen_subcommand_from learn' -l exe -r -F -d 'processes running PATH, and their descendants'
complete -c lsmguard -n '__fish_seen_subcommand_from learn' -l unit -x -d 'a systemd unit\'s processes (its cgroup)'
complete -c lsmguard -n '__fish_seen_subcommand_from learn' -l cgroup -x -d 'processes in this cgroup and below'
complete -c lsmguard -n '__fish_seen_subcommand_from learn' -l operations -x -d 'comma-separated: exec,open,chmod,connect,bind,listen (default: all of them)'
complete -c lsmguard -n '__fish_seen_subcommand_from learn' -l name -x -d 'the learning policy\'s name (default learn-SUBJECT)'
complete -c lsmguard -n '__fish_seen_subcommand_from learn' -l stop -x -a '(__lsmguard_names policies)' -d 'remove the learning policy NAME instead'

# suggest
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l policy-dir -x -a '(__fish_complete_directories)' -d 'policy directory (default /etc/lsmguard/policies.d, or $LSMGUARD_POLICY_DIR)'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l policy -x -a '(__lsmguard_names policies)' -d 'the records of this (learning) policy'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l exe -r -F -d 'processes running PATH, and their descendants'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l unit -x -d 'a systemd unit\'s processes (its cgroup)'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l cgroup -x -d 'processes in this cgroup and below'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -s S -l since -x -d '2026-11-21 10:00, 10:00, yesterday 10:00, today, -10m, 2h ago, @EPOCH, ... UTC'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -s U -l until -x -d ''
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l file -r -F -d 'read this journal file (repeatable)'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -s D -l directory -x -a '(__fish_complete_directories)' -d 'read the journal in DIR (a collector\'s)'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -s o -l output -r -F -d 'write the policy here (default: standard output)'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l name -x -d 'the suggested policy\'s name'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l enforce -d 'mode: enforce (default: audit)'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l collapse -x -d 'allow dir/** for a directory with N or more observed entries (default 10; 0: never by count)'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l no-packages -d 'do not allow package-managed trees (dir/** owned whole by one package)'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l cidrs -d 'allow the observed hosts\' /24 (IPv4) and /64 (IPv6) instead of the hosts'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l operations -x -d 'the operations default: deny governs (default: the learning policy\'s, or those observed)'
complete -c lsmguard -n '__fish_seen_subcommand_from suggest' -l interactive -s i -d 'for each rule: accept, refuse, widen to the parent /**, or edit (needs a terminal)'

# test
complete -c lsmguard -n '__fish_seen_subcommand_from test' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from test' -l json -d 'print the result as JSON'
complete -c lsmguard -n '__fish_seen_subcommand_from test' -s S -l since -x -d '2026-11-21 10:00, 10:00, yesterday 10:00, today, -10m, 2h ago, @EPOCH, ... UTC'
complete -c lsmguard -n '__fish_seen_subcommand_from test' -s U -l until -x -d ''
complete -c lsmguard -n '__fish_seen_subcommand_from test' -l file -r -F -d 'read this journal file (repeatable)'
complete -c lsmguard -n '__fish_seen_subcommand_from test' -s D -l directory -x -a '(__fish_complete_directories)' -d 'read the journal in DIR (a collector\'s)'
complete -c lsmguard -n '__lsmguard_argument test 0+ -S --since -U --until --file -D --directory' -F

# lock
complete -c lsmguard -n '__fish_seen_subcommand_from lock' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from lock' -l json -d 'print the result as JSON'
complete -c lsmguard -n '__fish_seen_subcommand_from lock' -l key-file -r -F -d 'write the key to FILE (new, mode 0600) instead of printing it'

# unlock
complete -c lsmguard -n '__fish_seen_subcommand_from unlock' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from unlock' -l json -d 'print the result as JSON'
complete -c lsmguard -n '__fish_seen_subcommand_from unlock' -l key-file -r -F -d 'read the key from FILE'

# daemon
complete -c lsmguard -n '__fish_seen_subcommand_from daemon' -s h -l help -d 'show this help message and exit'
complete -c lsmguard -n '__fish_seen_subcommand_from daemon' -l policy-dir -x -a '(__fish_complete_directories)' -d 'policy directory (default /etc/lsmguard/policies.d, or $LSMGUARD_POLICY_DIR)'
