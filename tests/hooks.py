"""The LSM hooks lsmguard's object attaches to, and its programs on each: docs/security.md's
hook coverage table lists each with what it decides."""
PROGRAMS_BY_HOOK = {
    "bprm_creds_for_exec": ("lg_bprm_creds_for_exec",), "bprm_check_security": ("lg_bprm_check_security",),
    "bprm_committed_creds": ("lg_bprm_committed_creds",), "task_alloc": ("lg_task_alloc",),
    "file_open": ("lg_file_open", "lg_file_open_mark"),
    "mmap_file": ("lg_mmap_file",), "file_mprotect": ("lg_file_mprotect",),
    "path_chmod": ("lg_path_chmod",), "path_chown": ("lg_path_chown",),
    "inode_setxattr": ("lg_inode_setxattr",), "inode_removexattr": ("lg_inode_removexattr",),
    "inode_set_acl": ("lg_inode_set_acl",), "inode_remove_acl": ("lg_inode_remove_acl",),
    "path_truncate": ("lg_path_truncate",), "file_truncate": ("lg_file_truncate",),
    "path_unlink": ("lg_path_unlink",), "path_rmdir": ("lg_path_rmdir",), "path_mknod": ("lg_path_mknod",),
    "path_mkdir": ("lg_path_mkdir",), "path_symlink": ("lg_path_symlink",), "path_link": ("lg_path_link",),
    "path_rename": ("lg_path_rename", "lg_path_rename_target"),
    "sb_mount": ("lg_sb_mount",), "move_mount": ("lg_move_mount",),
    # changes made on another's behalf (overlayfs on its upper layer, nfsd, ksmbd)
    "inode_create": ("lg_inode_create",), "inode_mknod": ("lg_inode_mknod",), "inode_mkdir": ("lg_inode_mkdir",),
    "inode_symlink": ("lg_inode_symlink",), "inode_unlink": ("lg_inode_unlink",), "inode_rmdir": ("lg_inode_rmdir",),
    "inode_link": ("lg_inode_link",), "inode_rename": ("lg_inode_rename", "lg_inode_rename_target"),
    "inode_setattr": ("lg_inode_setattr_args3", "lg_inode_setattr_args2"),
    "socket_connect": ("lg_socket_connect",), "socket_bind": ("lg_socket_bind",),
    "socket_listen": ("lg_socket_listen",), "socket_sendmsg": ("lg_socket_sendmsg",),
    "unix_stream_connect": ("lg_unix_stream_connect",), "unix_may_send": ("lg_unix_may_send",),
}
LSM_HOOKS = tuple(PROGRAMS_BY_HOOK)
# Hooks that kernels before 6.2 do not have: their programs are left out there.
LATER_HOOKS = ("file_truncate", "inode_set_acl", "inode_remove_acl")
PROGRAMS = tuple(p for programs in PROGRAMS_BY_HOOK.values() for p in programs)

# The maps lsmguard's object declares: the engine pins and adopts each, and the lock guards
# each (libbpf's maps of the object's global data are not among them).
ENGINE_MAPS = {
    "lg_config", "lg_policy_sets", "lg_path_entries", "lg_inet_networks", "lg_port_intervals", "lg_subject_uids",
    "lg_task_subjects", "lg_exe_ids", "lg_rule_identities", "lg_rule_hits_carried", "lg_rule_hits", "lg_stats",
    "lg_events", "lg_scratch", "lg_file_marks", "lg_path_summaries", "lg_device_summaries", "lg_coalesce",
    "lg_coalesce_reported", "lg_coalescing", "lg_build",
}
