/*
 * kcm.h: everything a KCM parser program needs, for clang alone.
 *
 * Build a parser with no kernel headers installed:
 *
 *     clang -O2 -target bpf -I "$(npx kcm bpf include)" -c parser.c -o parser.o
 *
 * then load it with loadBpf('parser.o') or try it with `npx kcm bpf run parser.o --hex ...`.
 *
 * A parser is a function in section "socket_kcm" that takes the context and returns the
 * message's total length in bytes (header included), 0 when more bytes are needed, or a
 * negative errno to reject the stream:
 *
 *     #include "kcm.h"
 *
 *     SEC("socket_kcm")
 *     int parser(struct __sk_buff *skb)
 *     {
 *             return load_word(skb, 0) + 4;   // 4-byte big-endian length, then the payload
 *     }
 *
 * The names below are those of the kernel's UAPI and of libbpf, so a program moves
 * between this header and <linux/bpf.h> + <bpf/bpf_helpers.h> unchanged (the load_*
 * declarations excepted, which libbpf does not provide). MIT licence.
 */
#ifndef KCM_BPF_KCM_H
#define KCM_BPF_KCM_H

/* Fixed-width types, as <linux/types.h> names them (redefinition with the same type is
 * allowed, so including that header as well is harmless). */
typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;

/* Puts a function or variable in the named ELF section. loadBpf looks for "socket_kcm" by
 * default, else the only program section. */
#ifndef SEC
#define SEC(name) __attribute__((section(name), used))
#endif

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/*
 * The context a parser receives. Only these fields mean something to kcm:
 *   len     bytes available from the message's first byte on (possibly past its end,
 *           into the next message);
 *   cb[0..4] scratch, zeroed before each run, readable and writable.
 * The other fields read as 0. There is no data/data_end: socket filters have no direct
 * packet access; read the bytes with load_* or bpf_skb_load_bytes.
 * The layout is the kernel's, so offsets agree with <linux/bpf.h>.
 */
#if !defined(__LINUX_BPF_H__) && !defined(_UAPI__LINUX_BPF_H__)
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
};
#endif

/*
 * Big-endian reads at a byte offset from the message's first byte (the LD_ABS and LD_IND
 * instructions). A read past the bytes available, or at a negative offset, ends the
 * program returning 0: "need more bytes". So a parser need not check skb->len before
 * reading its header.
 */
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

/*
 * Helpers kcm provides (any other helper is refused at load, naming it).
 */

/* Copies len bytes at offset into to (a stack buffer); returns 0, or -EFAULT (-14) with
 * to zero-filled when they are not all available. */
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) = (void *)26;
/* The same; start_header is accepted and ignored: offsets count from the message's first byte. */
static long (*bpf_skb_load_bytes_relative)(const void *skb, __u32 offset, void *to, __u32 len,
					   __u32 start_header) = (void *)68;
/* Nanoseconds of a monotonic clock. */
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
/* A pseudo-random number. */
static __u32 (*bpf_get_prandom_u32)(void) = (void *)7;
/* Always 0. */
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
/* Formats %d %i %u %x %c %% (with l/ll) to the kcm_bpf debug log (NODE_DEBUG=kcm_bpf);
 * fmt_size includes the terminating NUL. */
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)6;

/* Errors a parser may return negated: -EBADMSG rejects a malformed stream, and so on. The
 * psock reports the matching KcmError code. */
#ifndef EINVAL
#define EINVAL 22
#endif
#ifndef EPROTO
#define EPROTO 71
#endif
#ifndef EBADMSG
#define EBADMSG 74
#endif
#ifndef EMSGSIZE
#define EMSGSIZE 90
#endif

#endif /* KCM_BPF_KCM_H */
