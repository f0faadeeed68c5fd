/* Who the programs follow and which launch record an event belongs to: the runner
 * (run), or in trace a process tree, a cgroup or everything, with launches grouped
 * into cells by (command, executable, process or cgroup; clone flags).
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

/* trace: the path of an executable in its mount namespace, walked up its dentries
 * and across mount points (bpf_d_path is not allowed where launches are seen),
 * then written from the top down.  Runs once per group, when its cell is taken;
 * bpf_loop keeps the verifier's work to one pass over each step. */
struct fs_exe_walk {
	struct dentry *d;
	struct vfsmount *vm;
	struct mount *m;
	__u64 mnt_off; /* of the vfsmount inside struct mount */
	__u32 n;
	__u32 off;
	struct dentry *names[FS_EXE_DEPTH];
};
/* bpf_loop's context, on the stack: the walk's state and the path's buffer. */
struct fs_exe_ctx {
	struct fs_exe_walk *w;
	char *buf;
};

static long exe_walk_up(__u64 i, struct fs_exe_ctx *c)
{
	struct fs_exe_walk *w = c->w;
	/* Locals: a CO-RE read of w->x would relocate fs_exe_walk's fields too. */
	struct dentry *d = w->d;
	struct vfsmount *vm = w->vm;
	struct mount *m = w->m;
	if (d == BPF_CORE_READ(vm, mnt_root)) {
		/* The root of its mount: on to the mount point in the parent mount. */
		struct mount *parent = BPF_CORE_READ(m, mnt_parent);
		if (!parent || parent == m)
			return 1;
		w->d = BPF_CORE_READ(m, mnt_mountpoint);
		w->m = parent;
		w->vm = (struct vfsmount *)((char *)parent + w->mnt_off);
		return 0;
	}
	struct dentry *up = BPF_CORE_READ(d, d_parent);
	__u32 n = w->n;
	if (!up || up == d || n >= FS_EXE_DEPTH)
		return 1;
	w->names[n & (FS_EXE_DEPTH - 1)] = d;
	w->n = n + 1;
	w->d = up;
	return 0;
}

static long exe_write_down(__u64 i, struct fs_exe_ctx *c)
{
	struct fs_exe_walk *w = c->w;
	__u32 n = w->n, off = w->off;
	if (i >= n || off > FS_EXE_PATH - FS_EXE_NAME - 1)
		return 1;
	char *buf = c->buf;
	buf[off] = '/';
	off++;
	struct dentry *d = w->names[(n - 1 - i) & (FS_EXE_DEPTH - 1)];
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	long len = bpf_probe_read_kernel_str(buf + off, FS_EXE_NAME, name);
	if (len <= 1)
		return 1;
	w->off = off + len - 1;
	return 0;
}

/* The walk's state: too large for the stack of the launch programs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fs_exe_walk);
} exe_walk SEC(".maps");

static __always_inline void exe_path(struct file *f, char *buf)
{
	__u32 zero = 0;
	struct fs_exe_walk *w = bpf_map_lookup_elem(&exe_walk, &zero);
	if (!w)
		return;
	w->d = BPF_CORE_READ(f, f_path.dentry);
	w->vm = BPF_CORE_READ(f, f_path.mnt);
	w->mnt_off = bpf_core_field_offset(struct mount, mnt);
	w->m = (struct mount *)((char *)w->vm - w->mnt_off);
	w->n = 0;
	w->off = 0;
	struct fs_exe_ctx c = { .w = w, .buf = buf };
	bpf_loop(2 * FS_EXE_DEPTH, exe_walk_up, &c, 0);
	bpf_loop(FS_EXE_DEPTH, exe_write_down, &c, 0);
}

/* trace: the cell of a group, taken from the free cells on first sight (its
 * name recorded in group_names); other_cell when none is free. */
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
	struct fs_group_name *name = bpf_map_lookup_elem(&group_names, &c);
	if (name) {
		bpf_get_current_comm(name->comm, sizeof(name->comm));
		name->exe[0] = 0;
		if (group_by == FS_GROUP_BY_EXE) {
			struct task_struct *task = bpf_get_current_task_btf();
			struct file *f = BPF_CORE_READ(task, mm, exe_file);
			if (f)
				exe_path(f, name->exe);
		}
	}
	return c;
}

/* trace: the cell of the current task's launch (or exec) with these flags. */
static __always_inline __u32 trace_cell(__u64 flags)
{
	struct fs_group_key k = { .flags = flags };
	__u32 by = group_by;
	if (by == FS_GROUP_BY_EXE) {
		struct task_struct *task = bpf_get_current_task_btf();
		struct inode *ino = BPF_CORE_READ(task, mm, exe_file, f_inode);
		if (ino) {
			k.id[0] = BPF_CORE_READ(ino, i_sb, s_dev);
			k.id[1] = BPF_CORE_READ(ino, i_ino);
		}
	} else if (by == FS_GROUP_BY_PID) {
		struct task_struct *task = bpf_get_current_task_btf();
		k.id[0] = bpf_get_current_pid_tgid() >> 32;
		k.id[1] = BPF_CORE_READ(task, group_leader, start_time);
	} else if (by == FS_GROUP_BY_CGROUP) {
		k.id[0] = bpf_get_current_cgroup_id();
	} else {
		bpf_get_current_comm(k.comm, sizeof(k.comm));
	}
	return group_cell(&k);
}

#endif
