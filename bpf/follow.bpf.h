/* Who the programs follow and which launch record an event belongs to: the runner
 * (run), or in trace a process tree, a cgroup or everything, with launches grouped
 * into cells by (command, clone flags).
 * Include maps.bpf.h first. */
#ifndef FORKSCOPE_FOLLOW_BPF_H
#define FORKSCOPE_FOLLOW_BPF_H

static __always_inline int is_target(__u32 tgid)
{
	__u32 f = follow;
	if (f == FS_FOLLOW_TGID)
		return tgid == target_tgid;
	if (f == FS_FOLLOW_TREE)
		return bpf_map_lookup_elem(&tracked, &tgid) != NULL;
	if (tgid == self_tgid)
		return 0;
	if (f == FS_FOLLOW_CGROUP)
		return bpf_current_task_under_cgroup(&cgroups, 0) == 1;
	return 1;
}

static __always_inline struct fs_launch *launch_of_current(int function_probe)
{
	if (!fs_records_in_flight())
		return NULL;
	__u64 id = bpf_get_current_pid_tgid();
	if (follow == FS_FOLLOW_TGID && (__u32)(id >> 32) != target_tgid && !execs_in_flight)
		return NULL;
	__u32 tid = (__u32)id;
	struct fs_launch *l = bpf_map_lookup_elem(&launches, &tid);
	if (l)
		fs_count_event(l, function_probe);
	return l;
}

static __always_inline struct fs_launch *my_launch(void)
{
	return launch_of_current(0);
}

/* trace: the cell of a (command, clone flags) group, taken from the free cells on
 * first sight; other_cell when none is free. */
static __always_inline __u32 group_cell(struct fs_group_key *k)
{
	__u32 *v = bpf_map_lookup_elem(&groups, k);
	if (v)
		return *v;
	__u32 c;
	if (bpf_map_pop_elem(&free_cells, &c))
		return other_cell;
	if (bpf_map_update_elem(&groups, k, &c, BPF_NOEXIST)) {
		bpf_map_push_elem(&free_cells, &c, 0); /* another CPU added it first */
		v = bpf_map_lookup_elem(&groups, k);
		return v ? *v : other_cell;
	}
	return c;
}

static __always_inline __u32 trace_cell(__u64 flags)
{
	struct fs_group_key k = {};
	bpf_get_current_comm(k.comm, sizeof(k.comm));
	k.flags = flags;
	return group_cell(&k);
}

#endif
