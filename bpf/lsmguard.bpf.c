// SPDX-License-Identifier: GPL-2.0
/* lsmguard's kernel side: one CO-RE object, one program per LSM hook. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "lsmguard/abi.h"
#include "lsmguard/siphash.h"
#include "maps.bpf.h"
#include "path.bpf.h"
#include "events.bpf.h"

#define EPERM 1

char LICENSE[] SEC("license") = "GPL";

static __always_inline struct lg_path_rule *lg_exact_rule(const struct lg_path *path, __u32 op)
{
	struct lg_path_key key;
	struct lg_path_rule *rule;

	if (!lg_path_key_of(path, &key))
		return NULL;
	rule = bpf_map_lookup_elem(&lg_exact_paths, &key);
	if (rule && (rule->ops & (1U << op)))
		return rule;
	return NULL;
}

SEC("lsm/path_chmod")
int BPF_PROG(lg_path_chmod, const struct path *path, umode_t mode, int ret)
{
	struct lg_path resolved;
	struct lg_path_rule *rule;

	if (ret)
		return ret;
	if (!lg_resolve_path(BPF_CORE_READ(path, dentry), BPF_CORE_READ(path, mnt), &resolved))
		return 0;
	if (resolved.flags)
		lg_stat_inc(LG_STAT_PATHS_UNRESOLVED);

	rule = lg_exact_rule(&resolved, LG_OP_CHMOD);
	if (!rule)
		return 0;
	lg_stat_inc(LG_STAT_DENIED);
	lg_emit_path_event(LG_OP_CHMOD, LG_DECISION_DENY, rule->rule_id, &resolved, mode);
	return -EPERM;
}
