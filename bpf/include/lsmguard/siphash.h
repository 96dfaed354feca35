/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * Keyed SipHash-2-4, fed a byte or a word (8 bytes) at a time, whose hash can
 * be taken at any point without ending the feeding (lg_siphash_final_at), so
 * that every directory of a path is hashed on the way through it. Compiled
 * into the BPF object (fed words) and into the Python extension (fed bytes:
 * the reference the kernel's hashes are tested against). Needs
 * __u8/__u32/__u64 from the includer.
 */
#ifndef LSMGUARD_SIPHASH_H
#define LSMGUARD_SIPHASH_H

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

struct lg_siphash {
	__u64 v0, v1, v2, v3;
	__u64 pending; /* bytes not yet compressed, little-endian */
	__u32 len;     /* bytes fed so far */
	__u32 reserved;
};

static __always_inline __u64 lg_rotl64(__u64 x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static __always_inline void lg_sipround(struct lg_siphash *s)
{
	s->v0 += s->v1; s->v1 = lg_rotl64(s->v1, 13); s->v1 ^= s->v0; s->v0 = lg_rotl64(s->v0, 32);
	s->v2 += s->v3; s->v3 = lg_rotl64(s->v3, 16); s->v3 ^= s->v2;
	s->v0 += s->v3; s->v3 = lg_rotl64(s->v3, 21); s->v3 ^= s->v0;
	s->v2 += s->v1; s->v1 = lg_rotl64(s->v1, 17); s->v1 ^= s->v2; s->v2 = lg_rotl64(s->v2, 32);
}

static __always_inline void lg_siphash_init(struct lg_siphash *s, __u64 k0, __u64 k1)
{
	s->v0 = 0x736f6d6570736575ULL ^ k0;
	s->v1 = 0x646f72616e646f6dULL ^ k1;
	s->v2 = 0x6c7967656e657261ULL ^ k0;
	s->v3 = 0x7465646279746573ULL ^ k1;
	s->pending = 0;
	s->len = 0;
	s->reserved = 0;
}

static __always_inline void lg_siphash_compress(struct lg_siphash *s, __u64 m)
{
	s->v3 ^= m;
	lg_sipround(s);
	lg_sipround(s);
	s->v0 ^= m;
}

static __always_inline void lg_siphash_byte(struct lg_siphash *s, __u8 b)
{
	s->pending |= (__u64)b << (8 * (s->len & 7));
	s->len++;
	if ((s->len & 7) == 0) {
		lg_siphash_compress(s, s->pending);
		s->pending = 0;
	}
}

/*
 * The hash of `len` bytes: those compressed into `s` (a multiple of 8), then
 * `pending`, the rest, little-endian. `s` is left untouched.
 */
static __always_inline __u64 lg_siphash_final_at(const struct lg_siphash *s, __u64 pending, __u32 len)
{
	struct lg_siphash t = *s;
	__u64 b = ((__u64)(len & 0xff) << 56) | pending;

	lg_siphash_compress(&t, b);
	t.v2 ^= 0xff;
	lg_sipround(&t);
	lg_sipround(&t);
	lg_sipround(&t);
	lg_sipround(&t);
	return t.v0 ^ t.v1 ^ t.v2 ^ t.v3;
}

/* The hash of what was fed so far; `s` is left untouched so feeding can go on. */
static __always_inline __u64 lg_siphash_final(const struct lg_siphash *s)
{
	return lg_siphash_final_at(s, s->pending, s->len);
}

#endif /* LSMGUARD_SIPHASH_H */
