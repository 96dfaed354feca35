"""The LSM hooks lsmguard's object attaches to: its programs are named lg_<hook>."""
LSM_HOOKS = ("bprm_creds_for_exec", "bprm_check_security", "bprm_committed_creds", "task_alloc", "file_open",
             "mmap_file", "file_mprotect", "path_chmod", "path_link", "path_rename", "socket_connect",
             "socket_bind", "socket_listen", "socket_sendmsg", "unix_stream_connect", "unix_may_send")
PROGRAMS = tuple(f"lg_{hook}" for hook in LSM_HOOKS)
