/* SPDX-License-Identifier: GPL-2.0 */
/*
 * inet connects, binds and listens: one longest-prefix-match lookup finds the most specific
 * network with rules (its entry already merged with every covering network),
 * then a bounded binary search finds the port's interval.
 */
#ifndef LSMGUARD_INET_BPF_H
#define LSMGUARD_INET_BPF_H

#define LG_SOCK_STREAM 1           /* include/linux/net.h */
#define LG_SOCK_RAW 3
#define LG_AF_UNSPEC 0
#define LG_AF_SMC 43               /* include/linux/socket.h */
#define LG_IPPROTO_ICMP 1           /* include/uapi/linux/in.h */
#define LG_IPPROTO_TCP 6
#define LG_IPPROTO_UDP 17
#define LG_IPPROTO_UDPLITE 136
#define LG_IPPROTO_ICMPV6 58        /* include/uapi/linux/in6.h */
#define LG_IPPROTO_L2TP 115
#define LG_INADDR_LOOPBACK 0x0100007f /* 127.0.0.1, in network byte order as read on little-endian */
#define LG_IN_ADDR_LEN 4
#define LG_SIN6_LEN_RFC2133 24     /* an IPv6 sockaddr without sin6_scope_id, which the kernel accepts */
/* Bits of lg_inet_key ahead of the address: generation, slot, family, reserved. */
#define LG_INET_KEY_HEADER_BITS 32

static __always_inline __u16 lg_ntohs(__u16 port)
{
	return __builtin_bswap16(port);
}

/* ::ffff:a.b.c.d is the IPv4 address a.b.c.d, to rules and to the network */
static __always_inline void lg_set_inet6_address(struct lg_inet_target *target, const __u8 addr[LG_ADDR_LEN])
{
	if (!addr[0] && !addr[1] && !addr[2] && !addr[3] && !addr[4] && !addr[5] && !addr[6] && !addr[7] &&
	    !addr[8] && !addr[9] && addr[10] == 0xff && addr[11] == 0xff) {
		target->family = LG_AF_INET;
		__builtin_memcpy(target->addr, &addr[12], LG_IN_ADDR_LEN);
	} else {
		target->family = LG_AF_INET6;
		__builtin_memcpy(target->addr, addr, LG_ADDR_LEN);
	}
}

/*
 * The family the kernel will read the caller's sockaddr as. A datagram sent
 * with AF_UNSPEC reaches its address all the same on IPv4 UDP and raw
 * sockets (udp_sendmsg, raw_sendmsg take it for AF_INET), and IPv6 sockets
 * but UDP's take it for AF_INET6 (raw, L2TP/IP); IPv6 UDP ignores the
 * address then (the connected peer, decided at connect, gets it). A connect
 * with AF_UNSPEC only disconnects.
 */
static __always_inline __u16 lg_sendto_family(struct socket *sock, __u16 own, __u16 family)
{
	__u16 protocol;

	if (family != LG_AF_UNSPEC)
		return family;
	if (own == LG_AF_INET)
		return LG_AF_INET;
	if (own != LG_AF_INET6)
		return LG_AF_UNSPEC;
	protocol = BPF_CORE_READ(sock, sk, sk_protocol);
	return protocol == LG_IPPROTO_UDP || protocol == LG_IPPROTO_UDPLITE ? LG_AF_UNSPEC : LG_AF_INET6;
}

/* Fill `target` from the caller's sockaddr, read as `family`; false for what is not an inet destination. */
static __always_inline bool lg_inet_target_of(struct sockaddr *address, int addrlen, __u16 family,
					      struct lg_inet_target *target)
{
	if (family == LG_AF_INET && addrlen >= (int)sizeof(struct sockaddr_in)) {
		struct sockaddr_in *in = (void *)address;

		target->family = LG_AF_INET;
		target->port = lg_ntohs(BPF_CORE_READ(in, sin_port));
		bpf_probe_read_kernel(target->addr, LG_IN_ADDR_LEN, &in->sin_addr);
		return true;
	}
	if (family == LG_AF_INET6 && addrlen >= LG_SIN6_LEN_RFC2133) {
		struct sockaddr_in6 *in6 = (void *)address;
		__u8 addr[LG_ADDR_LEN];

		target->port = lg_ntohs(BPF_CORE_READ(in6, sin6_port));
		bpf_probe_read_kernel(addr, sizeof(addr), &in6->sin6_addr);
		lg_set_inet6_address(target, addr);
		return true;
	}
	return false; /* AF_UNSPEC (disconnect), or an address the protocol will refuse */
}

static __always_inline bool lg_inet6_is_any(const __u8 addr[LG_ADDR_LEN])
{
	__u64 high, low;

	__builtin_memcpy(&high, addr, sizeof(high));
	__builtin_memcpy(&low, addr + sizeof(high), sizeof(low));
	return !high && !low;
}

/*
 * The address a connect or send to a wildcard reaches: the kernel replaces
 * 0.0.0.0 by the socket's bound address, else 127.0.0.1 (ip_route_output_key:
 * "connect to self"), and :: by ::1 (or 127.0.0.1 on a socket bound to a
 * v4-mapped address), after the hook has seen the wildcard. Rules decide on
 * the address used.
 */
static __always_inline void lg_resolve_wildcard(struct socket *sock, struct lg_inet_target *target)
{
	struct sock *sk = BPF_CORE_READ(sock, sk);
	__u32 bound, v4;
	__u8 own6[LG_ADDR_LEN];

	if (target->family == LG_AF_INET) {
		__builtin_memcpy(&v4, target->addr, sizeof(v4));
		if (v4)
			return;
		bound = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		v4 = bound ? bound : LG_INADDR_LOOPBACK;
		__builtin_memcpy(target->addr, &v4, sizeof(v4));
		return;
	}
	if (!lg_inet6_is_any(target->addr))
		return;
	bpf_probe_read_kernel(own6, sizeof(own6), &sk->__sk_common.skc_v6_rcv_saddr);
	lg_set_inet6_address(target, own6);
	if (target->family == LG_AF_INET) { /* bound to a v4-mapped address: IPv4 loopback */
		v4 = LG_INADDR_LOOPBACK;
		__builtin_memcpy(target->addr, &v4, sizeof(v4));
		return;
	}
	__builtin_memset(target->addr, 0, LG_ADDR_LEN);
	target->addr[LG_ADDR_LEN - 1] = 1; /* ::1 */
}

/* The masks of `port` on the deepest network holding `target`, or false. */
static __always_inline bool lg_inet_lookup(const struct lg_inet_target *target, __u8 slot, __u32 generation,
					   struct lg_masks *found)
{
	struct lg_inet_key key = {
		.generation = generation, .slot = slot, .family = target->family,
	};
	struct lg_port_interval_key iv_key = { .generation = generation };
	struct lg_port_interval *iv;
	struct lg_inet_value *network;
	__u32 low, high, i;

	key.prefixlen = LG_INET_KEY_HEADER_BITS +
			8 * (target->family == LG_AF_INET ? LG_IN_ADDR_LEN : LG_ADDR_LEN);
	__builtin_memcpy(key.addr, target->addr, LG_ADDR_LEN);
	network = bpf_map_lookup_elem(&lg_inet_networks, &key);
	if (!network)
		return false;
	low = network->first;
	high = network->first + network->count; /* search [low, high) */
	for (i = 0; i < LG_PORT_SEARCH_STEPS; i++) {
		if (low >= high)
			break;
		iv_key.index = low + (high - low) / 2;
		iv = bpf_map_lookup_elem(&lg_port_intervals, &iv_key);
		if (!iv)
			break;
		if (target->port < iv->low) {
			high = iv_key.index;
		} else if (target->port > iv->high) {
			low = iv_key.index + 1;
		} else {
			*found = iv->masks;
			return true;
		}
	}
	return false;
}

/*
 * Decide `op` on an inet target in `slot`, report what the policies say, and
 * return the verdict. A global function, as lg_find_file: the target comes
 * as scalars (the address in two words, then family, port and protocol).
 */
__noinline int lg_decide_inet(__u64 op_slot, __u64 addr_lo, __u64 addr_hi, __u64 family_port_protocol)
{
	__u32 op = op_slot & 0xff;
	__u8 slot = (op_slot >> 8) & 0xff;
	struct lg_inet_target t = {
		.family = family_port_protocol & 0xffff,
		.port = (family_port_protocol >> 16) & 0xffff,
		.protocol = (family_port_protocol >> 32) & 0xffff,
	};
	struct lg_inet_target *target = &t;
	struct lg_access a = { .nslots = 1, .slots = { slot } };
	struct lg_outcome out = {};
	struct lg_policy_set *set;
	struct lg_config *config;
	struct lg_scratch *s;
	__u32 generation;
	__u64 seq;

	__builtin_memcpy(t.addr, &addr_lo, sizeof(addr_lo));
	__builtin_memcpy(t.addr + sizeof(addr_lo), &addr_hi, sizeof(addr_hi));
	set = lg_policy_set_in_force(&config, &generation);
	if (!set)
		return 0;
	lg_inet_lookup(target, slot, generation, &a.found[0]);
	s = lg_scratch_take(&seq); /* subjects may walk the cgroup path */
	if (!s)
		return 0;
	lg_decide(s, seq, config, set, generation, &a, &out);
	lg_scratch_give(s, seq);
	if (out.audit)
		lg_emit_inet_event(op, LG_DECISION_AUDIT, generation, out.audit_policy_id, out.audit_rule_id, target);
	if (out.decision == LG_DECISION_ALLOW)
		return 0;
	lg_emit_inet_event(op, out.decision, generation, out.policy_id, out.rule_id, target);
	return out.decision == LG_DECISION_DENY ? -EPERM : 0;
}

static __always_inline int lg_check_inet(__u32 op, __u8 slot, const struct lg_inet_target *target)
{
	__u64 lo, hi;

	__builtin_memcpy(&lo, target->addr, sizeof(lo));
	__builtin_memcpy(&hi, target->addr + sizeof(lo), sizeof(hi));
	return lg_decide_inet(op | (__u32)slot << 8, lo, hi,
			      target->family | (__u64)target->port << 16 | (__u64)target->protocol << 32) ? -EPERM : 0;
}

/*
 * SMC sockets (AF_SMC) take inet addresses and, where no SMC-capable device
 * is, run plain TCP over an internal socket whose connect, bind and listen
 * pass no LSM hook: decided here as TCP.
 */
static __always_inline __u16 lg_socket_family(struct socket *sock)
{
	return BPF_CORE_READ(sock, sk, __sk_common.skc_family);
}

static __always_inline bool lg_is_inet(__u16 own)
{
	return own == LG_AF_INET || own == LG_AF_INET6 || own == LG_AF_SMC;
}

static __always_inline __u16 lg_inet_protocol(struct socket *sock, __u16 own)
{
	return own == LG_AF_SMC ? LG_IPPROTO_TCP : BPF_CORE_READ(sock, sk, sk_protocol);
}

/* Stream sockets (TCP, MPTCP, SCTP one-to-one) are "tcp"; every other inet socket is "udp". */
static __always_inline bool lg_is_stream(struct socket *sock)
{
	return BPF_CORE_READ(sock, type) == LG_SOCK_STREAM;
}

/*
 * Raw, ICMP ping and L2TP/IP sockets have no destination port: the kernel ignores
 * what the caller wrote there (raw IPv6 reads it as a protocol number, L2TP's is
 * an unused field). Decided as port 0, so that a rule naming ports cannot be
 * matched by a number the caller chose.
 */
static __always_inline bool lg_inet_is_portless(struct socket *sock, __u16 own)
{
	__u16 protocol;

	if (own == LG_AF_SMC)
		return false;
	if (BPF_CORE_READ(sock, type) == LG_SOCK_RAW)
		return true;
	protocol = BPF_CORE_READ(sock, sk, sk_protocol);
	return protocol == LG_IPPROTO_ICMP || protocol == LG_IPPROTO_ICMPV6 || protocol == LG_IPPROTO_L2TP;
}

/* A connect, or a send with an address (`sending`): decided on the address the kernel will reach. */
static __always_inline int lg_check_inet_connect(struct socket *sock, struct sockaddr *address, int addrlen,
						 bool sending)
{
	struct lg_inet_target target = {};
	__u16 family = BPF_CORE_READ(address, sa_family);
	__u16 own = lg_socket_family(sock);

	if (!lg_is_inet(own))
		return 0; /* unix sockets: lg_check_unix_peer */
	if (sending)
		family = lg_sendto_family(sock, own, family);
	if (!lg_inet_target_of(address, addrlen, family, &target))
		return 0;
	if (lg_inet_is_portless(sock, own))
		target.port = 0;
	lg_resolve_wildcard(sock, &target);
	target.protocol = lg_inet_protocol(sock, own);
	return lg_check_inet(LG_OP_CONNECT, lg_is_stream(sock) ? LG_SLOT_TCP : LG_SLOT_UDP, &target);
}

/*
 * A bind to a local port. Port 0 asks for any free port: no listener a rule
 * could name. IPv4 (and SMC) sockets take AF_UNSPEC for AF_INET when the
 * address is INADDR_ANY (__inet_bind's "compatibility games").
 */
static __always_inline int lg_check_inet_bind(struct socket *sock, struct sockaddr *address, int addrlen)
{
	struct lg_inet_target target = {};
	__u16 family = BPF_CORE_READ(address, sa_family);
	__u16 own = lg_socket_family(sock);

	if (!lg_is_inet(own))
		return 0;
	if (family == LG_AF_UNSPEC && own != LG_AF_INET6)
		family = LG_AF_INET;
	if (!lg_inet_target_of(address, addrlen, family, &target) || !target.port)
		return 0;
	target.protocol = lg_inet_protocol(sock, own);
	return lg_check_inet(LG_OP_BIND, lg_is_stream(sock) ? LG_SLOT_BIND_TCP : LG_SLOT_BIND_UDP, &target);
}

/*
 * Listening on the socket's local port and address. A socket never bound
 * listens on a port the kernel picks after this hook: port 0, which no rule
 * names, so an allow-list refuses it.
 */
static __always_inline int lg_check_inet_listen(struct socket *sock)
{
	struct lg_inet_target target = {};
	struct sock *sk = BPF_CORE_READ(sock, sk);
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u8 addr[LG_ADDR_LEN];

	if (family == LG_AF_SMC) {
		/* its port is on the internal socket, out of the hook's sight: decided as port 0 */
		target.family = LG_AF_INET;
		target.protocol = LG_IPPROTO_TCP;
		return lg_check_inet(LG_OP_LISTEN, LG_SLOT_LISTEN, &target);
	}
	if (family != LG_AF_INET && family != LG_AF_INET6)
		return 0;
	target.port = BPF_CORE_READ(sk, __sk_common.skc_num); /* host byte order */
	target.protocol = BPF_CORE_READ(sk, sk_protocol);
	if (family == LG_AF_INET) {
		target.family = LG_AF_INET;
		bpf_probe_read_kernel(target.addr, LG_IN_ADDR_LEN, &sk->__sk_common.skc_rcv_saddr);
	} else {
		bpf_probe_read_kernel(addr, sizeof(addr), &sk->__sk_common.skc_v6_rcv_saddr);
		lg_set_inet6_address(&target, addr);
	}
	return lg_check_inet(LG_OP_LISTEN, LG_SLOT_LISTEN, &target);
}

#endif /* LSMGUARD_INET_BPF_H */
