// SPDX-License-Identifier: GPL-2.0
/*
 * Host twins of the LSM hot path (`make bench-hotpath`, tests/unit/kernel/test_hotpath_twin.py):
 * socket filters, which this host loads and runs with BPF_PROG_TEST_RUN (it
 * refuses LSM programs), that look a resolved name up in the path entries
 * with the real code: bpf/path.bpf.h and bpf/scratch.bpf.h's lg_lookup_packed,
 * SipHash from lsmguard/siphash.h, the maps of bpf/maps.bpf.h (lg_config's
 * hash key, lg_path_entries, lg_path_summaries) filled by the real compiler.
 * What needs an LSM hook (the dentry walk that names the file) is not here:
 * user space puts the name where the walk leaves it, at the end of the buffer.
 *
 * lg_twin_before runs the lookup as it was before issue 24 (hotpath_before.h)
 * against the same maps, so the bench compares them in one run.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "lsmguard/abi.h"
#include "lsmguard/siphash.h"
#include "maps.bpf.h"
#include "path.bpf.h"
#include "scratch.bpf.h"
#include "hotpath_before.h"

char LICENSE[] SEC("license") = "GPL";

/* What user space asks (lg_twin_input[0]). */
struct lg_twin_input {
	__u32 len;        /* the name: path[0, len) */
	__u32 dev;        /* its file system's device, hashed ahead of it */
	__u32 kind;       /* enum lg_name (LG_NAME_FILELESS: looked up as the empty name) */
	__u8 slots[LG_LOOKUP_SLOTS];
	__u8 nslots;
	__u8 ancestors;   /* look the name up as an ancestor too (lg_lookup_in_above) */
	__u32 generation;
	__u32 reserved;
	char path[LG_PATH_MAX];
};

/* The twin's own scratch: one, not per CPU, so that lg_twin_load's work is there on any CPU. */
struct lg_twin_state {
	struct lg_path_buf buf;
	struct lg_lookup lookup;
	struct lgb_lookup before;
	__u64 runs;
};

/* What a lookup found (lg_twin_output[0]). */
struct lg_twin_output {
	struct lg_masks found[LG_LOOKUP_SLOTS];
	struct lg_masks ancestor;
	__u64 full_hash;  /* the whole name's hash; after: 0 where no lookup needed it */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lg_twin_input);
} lg_twin_input SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lg_twin_state);
} lg_twin_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lg_twin_output);
} lg_twin_output SEC(".maps");

/* The name where a walk leaves it: ending at LG_PATH_MAX, as lg_finish_path says. */
static __always_inline void lg_twin_path(const struct lg_twin_input *in, struct lg_twin_state *st,
					 struct lg_path *path)
{
	__u32 len = in->len & LG_PATH_MASK;

	path->buf = &st->buf;
	path->start = LG_PATH_MAX - len;
	path->len = len;
	path->flags = 0;
	path->kind = in->kind;
	path->dev = in->dev;
	path->ino = 0;
}

static __always_inline int lg_twin_begin(struct lg_twin_input **in, struct lg_twin_state **st,
					 struct lg_config **config, struct lg_twin_output **out)
{
	__u32 zero = 0;

	*in = bpf_map_lookup_elem(&lg_twin_input, &zero);
	*st = bpf_map_lookup_elem(&lg_twin_state, &zero);
	*config = bpf_map_lookup_elem(&lg_config, &zero);
	*out = bpf_map_lookup_elem(&lg_twin_output, &zero);
	return *in && *st && *config && *out;
}

/* Copy the input's name into the state's buffer (run once before the timed runs). */
SEC("socket")
int lg_twin_load(struct __sk_buff *skb)
{
	struct lg_twin_input *in;
	struct lg_twin_state *st;
	struct lg_config *config;
	struct lg_twin_output *out;
	__u32 len;

	if (!lg_twin_begin(&in, &st, &config, &out))
		return 0;
	len = in->len;
	if (len > LG_PATH_MAX - 1)
		return 0;
	bpf_probe_read_kernel(&st->buf.data[LG_PATH_MAX - len], len & LG_PATH_MASK, in->path);
	return 1;
}

/* Everything the lookups' runs do but the lookup: what the bench subtracts. */
SEC("socket")
int lg_twin_empty(struct __sk_buff *skb)
{
	struct lg_twin_input *in;
	struct lg_twin_state *st;
	struct lg_config *config;
	struct lg_twin_output *out;
	struct lg_path path;

	if (!lg_twin_begin(&in, &st, &config, &out))
		return 0;
	lg_twin_path(in, st, &path);
	st->runs += path.len;
	return 1;
}

/* The lookup as the LSM programs make it now (lg_lookup_in, lg_lookup_in_above, then lg_lookup_ancestor). */
static __always_inline int lg_twin_lookup(__u32 generation)
{
	struct lg_twin_input *in;
	struct lg_twin_state *st;
	struct lg_config *config;
	struct lg_twin_output *out;
	struct lg_path path;

	if (!lg_twin_begin(&in, &st, &config, &out))
		return 0;
	lg_twin_path(in, st, &path);
	lg_lookup_want(&st->lookup, lg_device_summary(generation & 1, path.dev), in->slots[0], in->slots[1],
		       in->nslots);
	lg_lookup_packed(config, &path,
			 lg_pack_lookup(generation, in->slots[0], in->slots[1], in->nslots, false, in->ancestors != 0),
			 out->found, &st->lookup);
	if (in->ancestors)
		lg_lookup_ancestor(&st->lookup, generation & 1, &out->ancestor);
	out->full_hash = st->lookup.full_hash;
	return 1;
}

/* In the generation asked: the bench writes the encoder's summary there. */
SEC("socket")
int lg_twin_after(struct __sk_buff *skb)
{
	struct lg_twin_input *in;
	__u32 zero = 0;

	in = bpf_map_lookup_elem(&lg_twin_input, &zero);
	return in ? lg_twin_lookup(in->generation) : 0;
}

/* In the other generation: the bench writes the same entries there, with a summary of all ones. */
SEC("socket")
int lg_twin_all_lookups(struct __sk_buff *skb)
{
	struct lg_twin_input *in;
	__u32 zero = 0;

	in = bpf_map_lookup_elem(&lg_twin_input, &zero);
	return in ? lg_twin_lookup(in->generation ^ 1) : 0;
}

/* The lookup as it was (hotpath_before.h). */
SEC("socket")
int lg_twin_before(struct __sk_buff *skb)
{
	struct lg_twin_input *in;
	struct lg_twin_state *st;
	struct lg_config *config;
	struct lg_twin_output *out;
	struct lg_path path;
	__u64 what;

	if (!lg_twin_begin(&in, &st, &config, &out))
		return 0;
	lg_twin_path(in, st, &path);
	what = lg_pack_lookup(in->generation, in->slots[0], in->slots[1], in->nslots, false, false);
	out->full_hash = lgb_lookup_packed(config, &path, what, out->found, &st->before);
	return 1;
}
