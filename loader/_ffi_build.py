"""cffi (API mode) build of ``lsmguard.loader._libbpf``.

The C compiler reads libbpf's own headers, so libbpf's struct layouts are
never copied by hand. The lsmguard layouts come from ``bpf/include/lsmguard/
abi.h``, the header the BPF object is compiled from: its cffi region is read
verbatim into the cdef, and the extension includes the whole header, so the
compiler checks that both sides agree.
"""
from __future__ import annotations

from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "bpf" / "include"
ABI_HEADER = INCLUDE / "lsmguard" / "abi.h"

LIBBPF_CDEF = """
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

struct bpf_object;
struct bpf_program;
struct bpf_map;
struct bpf_link;
struct bpf_object_open_opts;

struct bpf_object *bpf_object__open_file(const char *path, const struct bpf_object_open_opts *opts);
int bpf_object__load(struct bpf_object *obj);
void bpf_object__close(struct bpf_object *obj);
struct bpf_program *bpf_object__next_program(const struct bpf_object *obj, struct bpf_program *prog);
struct bpf_program *bpf_object__find_program_by_name(const struct bpf_object *obj, const char *name);
struct bpf_map *bpf_object__next_map(const struct bpf_object *obj, const struct bpf_map *map);
struct bpf_map *bpf_object__find_map_by_name(const struct bpf_object *obj, const char *name);

const char *bpf_program__name(const struct bpf_program *prog);
const char *bpf_program__section_name(const struct bpf_program *prog);
int bpf_program__fd(const struct bpf_program *prog);
struct bpf_link *bpf_program__attach(const struct bpf_program *prog);
int bpf_program__set_autoload(struct bpf_program *prog, _Bool autoload);
_Bool bpf_program__autoload(const struct bpf_program *prog);

struct btf;
struct btf *btf__load_vmlinux_btf(void);
int btf__find_by_name_kind(const struct btf *btf, const char *type_name, __u32 kind);
struct btf_type { __u32 name_off; __u32 info; __u32 type; };  /* `type` shares a union with `size` */
const struct btf_type *btf__type_by_id(const struct btf *btf, __u32 id);
void btf__free(struct btf *btf);
#define BTF_KIND_FUNC 12

struct bpf_link *bpf_link__open(const char *path);
int bpf_link__fd(const struct bpf_link *link);
int bpf_link__pin(struct bpf_link *link, const char *path);
int bpf_link__unpin(struct bpf_link *link);
int bpf_link__detach(struct bpf_link *link);
int bpf_link__destroy(struct bpf_link *link);

const char *bpf_map__name(const struct bpf_map *map);
int bpf_map__fd(const struct bpf_map *map);
__u32 bpf_map__key_size(const struct bpf_map *map);
__u32 bpf_map__value_size(const struct bpf_map *map);
__u32 bpf_map__max_entries(const struct bpf_map *map);
unsigned int bpf_map__type(const struct bpf_map *map);
__u32 bpf_map__map_flags(const struct bpf_map *map);
int bpf_map__reuse_fd(struct bpf_map *map, int fd);
_Bool bpf_map__is_internal(const struct bpf_map *map);
int bpf_map__pin(struct bpf_map *map, const char *path);
int bpf_map__unpin(struct bpf_map *map, const char *path);

int bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags);
int bpf_map_lookup_elem(int fd, const void *key, void *value);
int bpf_map_delete_elem(int fd, const void *key);
int bpf_map_get_next_key(int fd, const void *key, void *next_key);
struct bpf_map_batch_opts;
int bpf_map_update_batch(int fd, const void *keys, const void *values, __u32 *count,
                         const struct bpf_map_batch_opts *opts);
int bpf_map_delete_batch(int fd, const void *keys, __u32 *count, const struct bpf_map_batch_opts *opts);
int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, __u32 *count,
                         const struct bpf_map_batch_opts *opts);
int bpf_obj_get(const char *pathname);
struct bpf_map_create_opts;
int bpf_map_create(unsigned int map_type, const char *map_name, __u32 key_size, __u32 value_size,
                   __u32 max_entries, const struct bpf_map_create_opts *opts);
int bpf_link_get_fd_by_id(__u32 id);
int bpf_obj_pin(int fd, const char *pathname);

struct bpf_map_info {
    __u32 type;
    __u32 id;
    __u32 key_size;
    __u32 value_size;
    __u32 max_entries;
    __u32 map_flags;
    char name[16];
    ...;
};
int bpf_obj_get_info_by_fd(int bpf_fd, void *info, __u32 *info_len);

struct bpf_prog_info {
    __u32 type;
    __u32 id;
    __u32 verified_insns;
    __u64 run_time_ns;
    __u64 run_cnt;
    ...;
};

struct bpf_link_info {
    __u32 type;
    __u32 id;
    __u32 prog_id;
    ...;
};

/* BPF_PROG_TEST_RUN: a program run on given input (socket filters on a packet), for host benchmarks. */
struct bpf_test_run_opts {
    size_t sz;
    const void *data_in;
    __u32 data_size_in;
    __u32 retval;
    int repeat;
    __u32 duration;
    ...;
};
int bpf_prog_test_run_opts(int prog_fd, struct bpf_test_run_opts *opts);

int libbpf_num_possible_cpus(void);
int libbpf_strerror(int err, char *buf, size_t size);

#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_EXIST 2

/* lsmguard glue, defined in the source below */
int lg_ring_take(void *consumer_page, const void *producer_page, const __u8 *data, __u64 size,
                 __u8 *out, __u32 out_size, __u32 max_records, __u32 *out_used);
#define LG_RING_RECORD_LENGTH 4
extern "Python" void lg_on_libbpf_print(int level, const char *message);
void lg_install_print_hook(int max_level);
__u64 lg_path_hash(__u64 k0, __u64 k1, const char *path, __u32 len);
int lg_membarrier_global(void);
"""

GLUE_SOURCE = r"""
#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/membarrier.h>
#include <linux/types.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include "lsmguard/abi.h"
#include "lsmguard/siphash.h"

static void lg_on_libbpf_print(int level, const char *message);
static int lg_print_max_level = LIBBPF_INFO;

/* libbpf hands printf-style arguments; Python cannot take a va_list, so format here. */
static int lg_print_trampoline(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    va_list copy;
    int needed;
    char *message;

    if ((int)level > lg_print_max_level)
        return 0;
    va_copy(copy, ap);
    needed = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (needed < 0)
        return 0;
    message = malloc((size_t)needed + 1);
    if (!message)
        return 0;
    vsnprintf(message, (size_t)needed + 1, fmt, ap);
    lg_on_libbpf_print((int)level, message);
    free(message);
    return needed;
}

static void lg_install_print_hook(int max_level)
{
    lg_print_max_level = max_level;
    libbpf_set_print(lg_print_trampoline);
}

/* Returns after every CPU has passed an RCU grace period (synchronize_rcu). */
static int lg_membarrier_global(void)
{
    return (int)syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0);
}

/*
 * The records of a BPF ring buffer, read from its pages as the kernel lays them out
 * (kernel/bpf/ringbuf.c): the consumer's position on the first page, the producer's on the
 * second, then the data, mapped once (libbpf maps it twice so that a record that wraps reads
 * as one; here such a record is copied in two pieces, and the ring costs its size once).
 * Copies up to `max_records` records into `out`, each as its length (a __u32) and its bytes,
 * 4-byte aligned; skips discarded ones; stops at a record still being written, or when `out`
 * is full; then moves the consumer's position past what it took. Returns the records copied
 * (`*out_used`: the bytes of `out` used), or -E2BIG for a record larger than `out` itself,
 * alone in its call and consumed (lost, and said so).
 */
#define LG_RING_RECORD_LENGTH 4

static int lg_ring_take(void *consumer_page, const void *producer_page, const __u8 *data, __u64 size,
                        __u8 *out, __u32 out_size, __u32 max_records, __u32 *out_used)
{
    __u64 *consumer_pos = consumer_page;
    const __u64 *producer_pos = producer_page;
    __u64 mask = size - 1;
    __u64 cons = __atomic_load_n(consumer_pos, __ATOMIC_ACQUIRE);
    __u64 prod = __atomic_load_n(producer_pos, __ATOMIC_ACQUIRE);
    __u32 used = 0;
    int taken = 0;

    while (cons < prod && (__u32)taken < max_records) {
        /* the header is 8-byte aligned and 8 bytes long: it never wraps */
        __u32 len = __atomic_load_n((const __u32 *)(data + (cons & mask)), __ATOMIC_ACQUIRE);
        __u32 length, need;
        __u64 at, first;

        if (len & BPF_RINGBUF_BUSY_BIT)
            break;
        length = len & ~(__u32)(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
        if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
            need = (LG_RING_RECORD_LENGTH + length + 3) & ~3u;
            if (need > out_size) {
                if (taken)
                    break;   /* hand over what was taken; this one comes first next time */
                /* no buffer holds it: consumed and reported, so the reader is never stuck */
                cons += (BPF_RINGBUF_HDR_SZ + length + 7) & ~7ull;
                taken = -E2BIG;
                break;
            }
            if (used + need > out_size)
                break;
            memcpy(out + used, &length, LG_RING_RECORD_LENGTH);
            at = (cons + BPF_RINGBUF_HDR_SZ) & mask;
            first = size - at < length ? size - at : length;
            memcpy(out + used + LG_RING_RECORD_LENGTH, data + at, first);
            memcpy(out + used + LG_RING_RECORD_LENGTH + first, data, length - first);
            used += need;
            taken++;
        }
        cons += (BPF_RINGBUF_HDR_SZ + length + 7) & ~7ull;
    }
    __atomic_store_n(consumer_pos, cons, __ATOMIC_RELEASE);
    *out_used = used;
    return taken;
}

static __u64 lg_path_hash(__u64 k0, __u64 k1, const char *path, __u32 len)
{
    struct lg_siphash state;
    __u32 i;

    lg_siphash_init(&state, k0, k1);
    for (i = 0; i < len; i++)
        lg_siphash_byte(&state, (__u8)path[i]);
    return lg_siphash_final(&state);
}
"""


def abi_cdef(header: Path = ABI_HEADER) -> str:
    """The declarations between the cffi markers of abi.h."""
    text = header.read_text()
    begin = text.index("/* cffi:begin */") + len("/* cffi:begin */")
    end = text.index("/* cffi:end */")
    return text[begin:end]


ffibuilder = FFI()
ffibuilder.cdef(LIBBPF_CDEF + abi_cdef())
ffibuilder.set_source(
    "lsmguard.loader._libbpf",
    GLUE_SOURCE,
    libraries=["bpf"],
    include_dirs=[str(INCLUDE)],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
