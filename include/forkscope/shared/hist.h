/* Histogram maths shared by the BPF aggregation and the user-space statistics:
 * log-linear, 8 slots per power of two (values < 8 ns exact), FS_HIST_SLOTS slots
 * (catalog.h), the last one open-ended.
 * Plain C, no includes: each side includes its base types and catalog.h first. */
#ifndef FORKSCOPE_SHARED_HIST_H
#define FORKSCOPE_SHARED_HIST_H

#ifndef FS_INLINE
#ifdef __cplusplus
#define FS_INLINE static inline
#else
#define FS_INLINE static __always_inline
#endif
#endif

/* Index of the highest set bit (0 for 0 and 1), branch-free for the verifier. */
FS_INLINE __u32 fs_log2(__u64 v)
{
	__u32 r = 0, s;
	s = (v > 0xffffffffULL) << 5; v >>= s; r |= s;
	s = (v > 0xffff) << 4; v >>= s; r |= s;
	s = (v > 0xff) << 3; v >>= s; r |= s;
	s = (v > 0xf) << 2; v >>= s; r |= s;
	s = (v > 0x3) << 1; v >>= s; r |= s;
	r |= (__u32)(v >> 1);
	return r;
}

FS_INLINE __u32 fs_hist_slot(__u64 ns)
{
	if (ns < 8)
		return (__u32)ns;
	__u32 msb = fs_log2(ns);
	__u32 slot = (msb - 2) * 8 + (__u32)((ns >> (msb - 3)) & 7);
	return slot < FS_HIST_SLOTS ? slot : FS_HIST_SLOTS - 1;
}

#endif
