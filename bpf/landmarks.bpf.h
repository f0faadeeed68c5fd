/* Allocation landmarks: which landmark a kmem_cache_alloc in the launching thread
 * is, from its call site (the sites user space resolved from kallsyms) and, inside
 * copy_process itself, from the cache allocated from.
 * Include maps.bpf.h first. */
#ifndef FORKSCOPE_LANDMARKS_BPF_H
#define FORKSCOPE_LANDMARKS_BPF_H

/* The landmark of an allocation's call site; FS_LM_COUNT when it is none of ours,
 * 0 when it is copy_process itself.  The state machine is applied once, after the
 * loop: inlined into every unrolled iteration it made the program slow to load. */
static __always_inline __u32 site_landmark(unsigned long call_site)
{
	__u32 n = nsites, lm = FS_LM_COUNT;
	for (__u32 i = 0; i < FS_MAX_SITES; i++) {
		if (i >= n)
			break;
		if (call_site >= sites[i].start && call_site < sites[i].end) {
			lm = sites[i].lm;
			break;
		}
	}
	return lm;
}

static __always_inline __u32 classify_copy_process_cache(struct fs_launch *l, struct kmem_cache *s)
{
	__u64 key = (__u64)s;
	__u32 *known = bpf_map_lookup_elem(&cache_lm, &key);
	if (known)
		return *known;

	char name[16] = {};
	const char *p = BPF_CORE_READ(s, name);
	bpf_probe_read_kernel_str(name, sizeof(name), p);
	__u32 lm = 0;
	if (name[0] == 't' && name[1] == 'a' && name[2] == 's' && name[3] == 'k')
		lm = FS_LM_TASK_STRUCT; /* task_struct */
	else if (name[0] == 's' && name[1] == 'i' && name[2] == 'g' && name[3] == 'h')
		lm = FS_LM_SIGHAND; /* sighand_cache */
	else if (name[0] == 's' && name[1] == 'i' && name[2] == 'g' && name[3] == 'n')
		lm = FS_LM_SIGNAL; /* signal_cache */
	else if (name[0] == 'm' && name[1] == 'm' && name[2] == '_' && name[3] == 's')
		lm = FS_LM_MM_STRUCT; /* mm_struct */
	if (lm) {
		bpf_map_update_elem(&cache_lm, &key, &lm, BPF_ANY);
		return lm;
	}
	/* Merged slab caches report another cache's name.  task_struct, sighand and
	 * mm_struct caches cannot merge (usercopy / RCU); signal_cache can. */
	return fs_find(l, FS_PH_COPY_PROCESS) < 0 ? FS_LM_TASK_STRUCT : FS_LM_SIGNAL;
}

#endif
