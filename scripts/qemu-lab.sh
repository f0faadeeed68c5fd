#!/usr/bin/env bash
# Kernel lab: run one command inside a QEMU guest booted with one of Debian's
# stock kernels, which have fentry/fexit and kprobes, unlike the locked-down
# kernels our machines run.  Recipe: ../../shared/KERNEL-LAB.md §2.
#
#   scripts/qemu-lab.sh [--kernel K] [--timeout S] [--out DIR] [--env NAME[=VALUE]]... [--icount] -- COMMAND [ARGS...]
#
# --kernel K: a kernel series, 6.1 (default: bookworm's linux-image-amd64) or
# 6.12 (the newest 6.12 of bookworm-backports and trixie), optionally with a
# flavour (6.12-rt, 6.12-cloud); or a package name (linux-image-6.12.57+deb12-amd64).
# Series other than the machine's own are read from the mirror the machine's
# apt uses, through a private apt state in $FORKSCOPE_CACHE/kernel/apt (its own
# sources list, lists and cache): the machine's apt setup is never changed.
#
# The guest sees the host's / read-only (over virtio-9p), so COMMAND can be a
# binary just built on the host, e.g. /work/main/build/forkscope doctor.  Inside
# the guest: proc, sys, devtmpfs, tracefs, debugfs, bpffs, cgroup2 are mounted,
# /tmp is the host's /tmp under a writable tmpfs layer (writes vanish with the
# guest), /run is a fresh tmpfs, and DIR is shared writable at /out.  COMMAND
# runs as root in the host's current directory (read-only), with stdout and
# stderr merged into the console, and its output is shown live.
#
# DIR (default: a new /tmp/forkscope-qemu-lab.XXXXXX) receives console.log (the
# whole serial console), dmesg.txt (the guest kernel log) and exit-code.
#
# --icount: a deterministic guest clock.  Plain TCG times the guest by the host's
# clock, so timings inside it follow the host's load (the same forkscope run's
# phase means differed by up to 60% a minute apart on a shared 2-CPU host).  With
# --icount the guest clock advances 1 ns per emulated instruction (QEMU -icount
# shift=0), whatever the host does: repeated runs agree within about 1%.  The
# guest gets one vCPU (bringing up a second one hangs under icount with QEMU 7.2
# and Debian's 6.1) and sees QEMU_LAB_ICOUNT=1.
#
# Exit status: COMMAND's own status; 124 when the guest ran out of time;
# 125 when the guest could not boot, mount or start COMMAND (a one-line reason is
# printed); 2 for bad usage; 3 when the host cannot provide QEMU or the kernel
# (missing packages and not root, no Debian mirror and nothing cached).
#
# Environment: FORKSCOPE_CACHE (default /var/cache/forkscope): each kernel is
# kept in $FORKSCOPE_CACHE/kernel/<version>/ and re-used until Debian moves its
# series to a newer version (without apt lists or a mirror, the newest cached
# kernel of the series is used).
set -euo pipefail

CACHE="${FORKSCOPE_CACHE:-/var/cache/forkscope}/kernel"
TIMEOUT=480
OUT=""
ENV_VARS=()
ICOUNT=0
KERNEL_SPEC=6.1
# The markers the host looks for on the serial console.
START_MARK="=== qemu-lab: command start ==="
END_MARK="=== qemu-lab: command end"
FAIL_MARK="qemu-lab-guest-failure:"

say() { echo "qemu-lab: $*" >&2; }
die() { local code=$1; shift; say "$*"; exit "$code"; }
usage() {
  echo "usage: scripts/qemu-lab.sh [--kernel 6.1|6.12|6.12-rt|6.12-cloud|linux-image-...] [--timeout S] [--out DIR]" >&2
  echo "                           [--env NAME[=VALUE]]... [--icount] -- COMMAND [ARGS...]" >&2
  echo "  runs COMMAND in a QEMU guest with a Debian stock kernel; see the top of this script" >&2
  exit 2
}

while (($#)); do
  case "$1" in
    --timeout) [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -gt 0 ]] || die 2 "--timeout needs a number of seconds"; TIMEOUT=$2; shift 2 ;;
    --out) [[ $# -ge 2 && -n $2 ]] || die 2 "--out needs a directory"; OUT=$2; shift 2 ;;
    --env) [[ $# -ge 2 && $2 =~ ^[A-Za-z_][A-Za-z0-9_]*(=.*)?$ ]] || die 2 "--env needs NAME or NAME=VALUE"; ENV_VARS+=("$2"); shift 2 ;;
    --icount) ICOUNT=1; shift ;;
    --kernel) [[ $# -ge 2 && $2 =~ ^([0-9]+\.[0-9]+(-(rt|cloud))?|linux-image-[0-9][A-Za-z0-9.+~-]*)$ ]] \
                || die 2 "--kernel needs a series (6.1, 6.12, 6.12-rt, 6.12-cloud) or a package (linux-image-...)"
              KERNEL_SPEC=$2; shift 2 ;;
    -h|--help) usage ;;
    --) shift; break ;;
    *) say "unknown option '$1' (the command goes after --)"; usage ;;
  esac
done
(($#)) || { say "no command given"; usage; }

# ---------------------------------------------------------------------------
# Host tools.  Installed from Debian's packages when missing (needs root),
# the same way scripts/setup.sh installs the build dependencies.
# ---------------------------------------------------------------------------
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) -eq 0 ]] || die 3 "missing Debian packages: ${missing[*]}; run as root or apt-get install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Another apt run may hold the lock (other sessions install things too): wait for it.
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || true
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die 3 "could not install ${missing[*]}"
}
# qemu-system-x86: the emulator; busybox-static: the guest's /init needs a shell
# before the host's / is mounted; cpio: the initramfs; kmod: depmod/modprobe
# compute the module load order; xz-utils, zstd: compressed modules and kernels;
# binutils: readelf checks the extracted kernel.
ensure_packages qemu-system-x86 busybox-static cpio kmod xz-utils zstd binutils

# ---------------------------------------------------------------------------
# The kernel: a Debian kernel package chosen by --kernel, by version, cached.
# ---------------------------------------------------------------------------
# The Debian mirror the machine's apt reads (it may be a proxy or a registry),
# from apt's own view of its sources: the URI of this release's main suite.
machine_mirror() {
  local codename
  # shellcheck disable=SC1091  # the running system's file
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  # shellcheck disable=SC2016  # apt's own placeholders
  apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null \
    | awk -v c="$codename" '$2 == c {print $1; exit}'
}

# Newer kernels (bookworm-backports, trixie) are read through a private apt
# state under the cache: its own sources list, lists and package cache, so the
# machine's apt sources and lists are never touched.
APT_DIR="$CACHE/apt"
PRIVATE_APT=(-o "Dir::Etc::sourcelist=$APT_DIR/sources.list" -o Dir::Etc::sourceparts=/dev/null
             -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache")
PRIVATE_SUITES=(bookworm-backports trixie)
APT_OPTS=()

# Refreshes the private lists: when missing, older than a day, or given "force".
private_apt_update() {
  local mirror suite
  if [[ ${1:-} != force ]] \
     && [[ -n $(find "$APT_DIR/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n1) ]]; then
    return 0
  fi
  mirror=$(machine_mirror)
  [[ -n $mirror ]] || { say "cannot find the machine's Debian mirror in its apt sources"; return 1; }
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
  for suite in "${PRIVATE_SUITES[@]}"; do
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main"
  done >"$APT_DIR/sources.list"
  say "reading ${PRIVATE_SUITES[*]} from $mirror (private apt state in $APT_DIR)"
  apt-get "${PRIVATE_APT[@]}" -o APT::Sandbox::User="$(id -un)" update -qq >/dev/null 2>&1
}

# Prints the newest kernel package of series $1 (e.g. 6.12) and flavour $2
# ("", rt or cloud) that a linux-image-[FLAVOUR-]amd64 metapackage depends on
# in the apt state APT_OPTS, e.g. linux-image-6.12.57+deb12-amd64.
resolve_series() {
  local series=$1 flavour=${2:+$2-}
  apt-cache "${APT_OPTS[@]}" show "linux-image-${flavour}amd64" 2>/dev/null \
    | sed -n 's/^Depends: \(linux-image-[0-9][^ ,]*\).*/\1/p' \
    | grep -E "^linux-image-${series//./\\.}[.-][0-9].*-${flavour}amd64\$" | sort -uV | tail -n1 || true
}

# True when package $1 is known to the apt state APT_OPTS.
apt_knows() { apt-cache "${APT_OPTS[@]}" show "$1" >/dev/null 2>&1; }

# The modules the guest loads; their dependencies are added by modprobe.
# virtio_pci finds the 9p devices, 9pnet_virtio is the transport (9p.ko only
# requests it by name at mount time, which needs a modprobe the guest lacks);
# overlay lets the guest's /tmp show the host's /tmp and still be writable.
GUEST_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

# True when kernel $1 is unpacked in the cache with the modules GUEST_MODULES needs.
kernel_ready() {
  [[ -f $CACHE/$1/modules.order && "$(cat "$CACHE/$1/guest-modules" 2>/dev/null)" == "${GUEST_MODULES[*]}" ]]
}

# Microseconds since the epoch, without forking (EPOCHREALTIME's decimal
# separator follows the locale).
now_us() { echo "${EPOCHREALTIME//[.,]/}"; }
# Seconds since $1 (from now_us), one decimal.
since() { local d=$(( $(now_us) - $1 )); printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000)); }

# Decompresses the ELF kernel inside bzImage $1 into $2 when it can boot
# directly through its PVH entry point (CONFIG_PVH: ELF note 0x12).  QEMU then
# skips the in-guest decompression, which under TCG costs ~5 s of every boot.
extract_pvh_vmlinux() {
  local bz=$1 out=$2 magic tool off
  for magic in xz zstd gzip; do
    case $magic in
      # LC_ALL=C: the magic bytes are not valid UTF-8.
      xz) tool=(xz -dc --single-stream); off=$(LC_ALL=C grep -abo -m1 $'\xfd7zXZ' "$bz" | head -n1 | cut -d: -f1) ;;
      zstd) tool=(zstd -qdc); off=$(LC_ALL=C grep -abo -m1 $'\x28\xb5\x2f\xfd' "$bz" | head -n1 | cut -d: -f1) ;;
      gzip) tool=(gzip -dc); off=$(LC_ALL=C grep -abo -m1 $'\x1f\x8b\x08' "$bz" | head -n1 | cut -d: -f1) ;;
    esac
    [[ -n $off ]] || continue
    # Trailing data after the stream makes the tools complain: the ELF check decides.
    tail -c +$((off + 1)) "$bz" | "${tool[@]}" >"$out" 2>/dev/null || true
    if [[ $(head -c4 "$out" 2>/dev/null) == $'\x7fELF' ]] && readelf -n "$out" 2>/dev/null | grep -q 'type: (0x00000012)'; then
      return 0
    fi
  done
  return 1
}

# Downloads the .deb of package $1 into $CACHE/debs unless it is there, with
# the apt state APT_OPTS.
download_deb() {
  local pkg=$1
  ls "$CACHE/debs/${pkg}_"*.deb >/dev/null 2>&1 && return 0
  say "downloading $pkg"
  mkdir -p "$CACHE/debs/.partial"
  # The sandbox user _apt cannot write to a root-only cache: download as us.
  (cd "$CACHE/debs/.partial" && apt-get "${APT_OPTS[@]}" -o APT::Sandbox::User="$(id -un)" download "$pkg" >/dev/null) \
    || return 1
  mv "$CACHE/debs/.partial/${pkg}_"*.deb "$CACHE/debs/"
}

# Unpacks the downloaded kernel $1 into $CACHE/$1: vmlinuz, config, and the
# modules GUEST_MODULES need, decompressed, with their load order.
unpack_kernel() {
  local ver=$1 pkg="linux-image-$1" deb tmp
  deb=$(find "$CACHE/debs" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n1)
  tmp=$(mktemp -d "$CACHE/.unpack.XXXXXX")
  CLEANUP_DIRS+=("$tmp")
  say "unpacking $(basename "$deb")"
  dpkg-deb -x "$deb" "$tmp/root"
  [[ -f $tmp/root/boot/vmlinuz-$ver ]] || die 3 "$deb has no boot/vmlinuz-$ver"
  # trixie's packages are merged-/usr: depmod and modprobe look in lib/modules.
  if [[ ! -d $tmp/root/lib/modules && -d $tmp/root/usr/lib/modules ]]; then
    mkdir -p "$tmp/root/lib" && ln -s ../usr/lib/modules "$tmp/root/lib/modules"
  fi
  # The package ships no modules.dep (its postinst runs depmod): make one.
  depmod -b "$tmp/root" "$ver"
  mkdir -p "$tmp/stage/modules"
  local m line path name deps order=()
  for m in "${GUEST_MODULES[@]}"; do
    # "insmod /path/x.ko[.xz|.zst] [opts]" per module, dependencies first;
    # "builtin x" for what this kernel has built in (nothing to load).
    deps=$(modprobe -d "$tmp/root" -S "$ver" --show-depends "$m") || die 3 "modprobe cannot resolve $m in $ver"
    while read -r line; do
      [[ $line == insmod\ * ]] || continue
      path=${line#insmod }; path=${path%% *}
      name=$(basename "$path"); name=${name%%.ko*}
      [[ " ${order[*]} " == *" $name "* ]] && continue
      order+=("$name")
      # busybox insmod takes plain ELF only: decompress here.
      case "$path" in
        *.ko.xz) xz -dc "$path" ;;
        *.ko.zst) zstd -qdc "$path" ;;
        *.ko.gz) gzip -dc "$path" ;;
        *.ko) cat "$path" ;;
        *) die 3 "unexpected module file $path" ;;
      esac >"$tmp/stage/modules/$name.ko"
    done <<<"$deps"
  done
  printf '%s\n' "${order[@]}" >"$tmp/stage/modules.order"
  echo "${GUEST_MODULES[*]}" >"$tmp/stage/guest-modules"
  cp "$tmp/root/boot/vmlinuz-$ver" "$tmp/stage/vmlinuz"
  cp "$tmp/root/boot/config-$ver" "$tmp/stage/config"
  extract_pvh_vmlinux "$tmp/stage/vmlinuz" "$tmp/stage/vmlinux" || rm -f "$tmp/stage/vmlinux"
  rm -rf "${CACHE:?}/$ver"
  mv "$tmp/stage" "$CACHE/$ver"
  rm -rf "$tmp"
}

# Refreshes the machine's own lists (fresh machines, CI, may have none).
apt_update() {
  [[ $(id -u) -eq 0 ]] || return 0
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
}

# Resolves --kernel to a package: sets PKG and APT_OPTS (the apt state that
# knows it), or leaves PKG empty.  With "force" the lists are updated first.
resolve_spec() {
  local force=${1:-} series flavour=""
  PKG=""
  APT_OPTS=()
  [[ -n $force ]] && apt_update
  if [[ $KERNEL_SPEC == linux-image-* ]]; then
    apt_knows "$KERNEL_SPEC" && { PKG=$KERNEL_SPEC; return 0; }
    APT_OPTS=("${PRIVATE_APT[@]}")
    private_apt_update "$force" || true
    apt_knows "$KERNEL_SPEC" && PKG=$KERNEL_SPEC
    return 0
  fi
  series=${KERNEL_SPEC%%-*}
  [[ $KERNEL_SPEC == *-* ]] && flavour=${KERNEL_SPEC#*-}
  # The machine's own release first (bookworm: 6.1), then the newer suites.
  PKG=$(resolve_series "$series" "$flavour")
  [[ -n $PKG ]] && return 0
  APT_OPTS=("${PRIVATE_APT[@]}")
  private_apt_update "$force" || true
  PKG=$(resolve_series "$series" "$flavour")
}

# The newest cached kernel that matches --kernel, for when apt cannot say.
cached_kernel() {
  local pattern series flavour=""
  if [[ $KERNEL_SPEC == linux-image-* ]]; then
    pattern="^${KERNEL_SPEC#linux-image-}\$"
  else
    series=${KERNEL_SPEC%%-*}
    [[ $KERNEL_SPEC == *-* ]] && flavour="${KERNEL_SPEC#*-}-"
    pattern="^${series//./\\.}[.-][0-9].*-${flavour}amd64\$"
  fi
  find "$CACHE" -mindepth 2 -maxdepth 2 -name guest-modules -printf '%h\n' 2>/dev/null \
    | xargs -r -n1 basename | grep -E "$pattern" | sort -V | tail -n1 || true
}

CLEANUP_DIRS=()
QPID=""
# shellcheck disable=SC2317  # called through the trap
cleanup() {
  if [[ -n $QPID ]]; then kill "$QPID" 2>/dev/null || true; fi
  if ((${#CLEANUP_DIRS[@]})); then rm -rf "${CLEANUP_DIRS[@]}"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! mkdir -p "$CACHE" 2>/dev/null || [[ ! -w $CACHE ]]; then
  die 3 "cannot write the kernel cache $CACHE; set FORKSCOPE_CACHE to a writable directory"
fi
t_prepare=$(now_us)
# One preparation at a time (parallel runs share the cache).
exec 9>"$CACHE/.lock"
flock 9
resolve_spec
# No lists yet (fresh machine) or a series newer than them: update once.
[[ -n $PKG ]] || resolve_spec force
if [[ -n $PKG ]]; then
  KVER=${PKG#linux-image-}
  if ! kernel_ready "$KVER"; then
    if ! download_deb "$PKG"; then
      # Stale lists name a version the mirror no longer has: update once, retry.
      resolve_spec force
      [[ -n $PKG ]] || die 3 "no Debian kernel package for --kernel $KERNEL_SPEC after updating the lists"
      KVER=${PKG#linux-image-}
      kernel_ready "$KVER" || download_deb "$PKG" \
        || die 3 "apt-get download $PKG failed (no Debian mirror reachable?)"
    fi
    kernel_ready "$KVER" || unpack_kernel "$KVER"
  fi
else
  # No package lists and no mirror: fall back to the newest matching kernel cached.
  KVER=$(cached_kernel)
  [[ -n $KVER ]] || die 3 "no Debian kernel package for --kernel $KERNEL_SPEC in the machine's suites or ${PRIVATE_SUITES[*]} (or no mirror reachable), and none cached in $CACHE"
  say "--kernel $KERNEL_SPEC unresolvable; using the cached $KVER"
fi
flock -u 9
KDIR="$CACHE/$KVER"
KERNEL_IMAGE="$KDIR/vmlinuz"
[[ -f $KDIR/vmlinux ]] && KERNEL_IMAGE="$KDIR/vmlinux"

# ---------------------------------------------------------------------------
# The run directory, shared writable with the guest at /out.
# ---------------------------------------------------------------------------
if [[ -z $OUT ]]; then
  OUT=$(mktemp -d "${TMPDIR:-/tmp}/forkscope-qemu-lab.XXXXXX")
else
  mkdir -p "$OUT" || die 2 "cannot create --out $OUT"
fi
OUT=$(cd "$OUT" && pwd)
[[ -w $OUT ]] || die 2 "--out $OUT is not writable"
LOG="$OUT/console.log"
rm -f "$OUT/exit-code" "$OUT/dmesg.txt" "$LOG"

# ---------------------------------------------------------------------------
# The initramfs: busybox, the modules, /init, and the command.  Rebuilt every
# run (a fraction of a second): the command is part of it.
# ---------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qemu-lab-initrd.XXXXXX")
CLEANUP_DIRS+=("$WORK")

mkdir -p "$WORK/initrd/bin" "$WORK/initrd/lib/modules"
cp /bin/busybox "$WORK/initrd/bin/busybox"
# The applet links are made here: busybox --install in the guest costs ~1 s under TCG.
for applet in $(/bin/busybox --list); do
  [[ $applet == busybox ]] || ln -s busybox "$WORK/initrd/bin/$applet"
done
cp "$KDIR"/modules/*.ko "$WORK/initrd/lib/modules/"
cp "$KDIR/modules.order" "$WORK/initrd/modules.order"

# The command as a bash script run by the host's own bash inside the guest.
{
  echo '#!/bin/bash'
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8 QEMU_LAB=1'
  ((ICOUNT)) && echo 'export QEMU_LAB_ICOUNT=1'
  for e in "${ENV_VARS[@]}"; do
    if [[ $e == *=* ]]; then printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"
    elif [[ -v $e ]]; then printf 'export %s=%q\n' "$e" "${!e}"
    fi
  done
  printf 'cd -- %q 2>/dev/null || cd /out\n' "$PWD"
  # Through a pipe: the console is a tty, and tools would draw live progress
  # lines into the log; with a pipe they print plain lines, as under CI.
  printf '%q ' "$@"; printf '2>&1 | cat\n'
  # shellcheck disable=SC2016  # expanded in the guest
  echo 'exit "${PIPESTATUS[0]}"'
} >"$WORK/initrd/command.sh"

cat >"$WORK/initrd/init" <<EOF
#!/bin/busybox sh
# PID 1 of the kernel-lab guest (generated by scripts/qemu-lab.sh).
export PATH=/bin
START_MARK='$START_MARK'
END_MARK='$END_MARK'
FAIL_MARK='$FAIL_MARK'
EOF
cat >>"$WORK/initrd/init" <<'EOF'
# Any failure before the command runs: one line the host reports, then power off
# (returning from PID 1 would only panic).
fail() { echo "$FAIL_MARK $*"; echo o >/proc/sysrq-trigger; sleep 30; }
mkdir -p /proc /sys /dev /host /newroot
mount -t proc proc /proc || fail "cannot mount proc"
mount -t sysfs sysfs /sys || fail "cannot mount sysfs"
mount -t devtmpfs devtmpfs /dev || fail "cannot mount devtmpfs"
# A name for results' host field ("qemu-lab 6.12...", not "(none)").
hostname qemu-lab
for m in $(cat /modules.order); do
  insmod "/lib/modules/$m.ko" || fail "insmod $m failed"
done

# The host's / read-only.  The PCI probe that creates the 9p channel may lag
# the insmod by a moment: retry briefly.  cache=loose: it cannot change under us
# in any way that matters for a run, and it makes exec and library loads faster.
i=0
until mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose host /host 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 50 ] || fail "cannot mount the host's / (9p tag host)"; sleep 0.1
done

# The new root is a tmpfs holding the host's top-level entries (bind mounts
# and symlinks), so that mount points which do not exist on the read-only
# host (/out) can be made, and /tmp, /run can be writable.
mount -t tmpfs -o mode=0755 rootfs /newroot || fail "cannot mount the root tmpfs"
for e in /host/* /host/.[!.]*; do
  [ -e "$e" ] || [ -L "$e" ] || continue
  n=${e#/host/}
  case "$n" in
    proc|sys|dev|tmp|run|out) continue ;;
  esac
  if [ -L "$e" ]; then ln -s "$(readlink "$e")" "/newroot/$n"
  elif [ -d "$e" ]; then mkdir "/newroot/$n" && mount -o bind "$e" "/newroot/$n"
  else touch "/newroot/$n" && mount -o bind "$e" "/newroot/$n"
  fi || fail "cannot bind the host's /$n"
done
R=/newroot
mkdir -p $R/proc $R/sys $R/dev $R/tmp $R/run $R/out
mount -t proc proc $R/proc || fail "cannot mount proc"
mount -t sysfs sysfs $R/sys || fail "cannot mount sysfs"
mount -t devtmpfs devtmpfs $R/dev || fail "cannot mount devtmpfs"
mkdir -p $R/dev/shm $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm || fail "cannot mount /dev/shm"
mount -t devpts devpts $R/dev/pts || true
# BPF tooling expects these: tracefs (kprobe_events, available_filter_functions),
# debugfs (older tools look there), bpffs (pinning), cgroup2.
mount -t tracefs tracefs $R/sys/kernel/tracing || fail "cannot mount tracefs"
mount -t debugfs debugfs $R/sys/kernel/debug || true
mount -t bpf bpf $R/sys/fs/bpf || fail "cannot mount bpffs"
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || true
# /tmp: the host's /tmp (a build tree may live there) under a writable tmpfs
# layer; plain tmpfs if overlayfs refuses the 9p lower layer.
mkdir -p /scratch && mount -t tmpfs -o mode=0755 scratch /scratch && mkdir -p /scratch/tmp /scratch/tmp.work \
  && chmod 1777 /scratch/tmp \
  && mount -t overlay -o lowerdir=/host/tmp,upperdir=/scratch/tmp,workdir=/scratch/tmp.work overlay $R/tmp \
  || mount -t tmpfs -o mode=1777 tmp $R/tmp || fail "cannot mount /tmp"
mount -t tmpfs -o mode=0755 run $R/run || fail "cannot mount /run"
# The host's output directory, writable, no caching: the host reads it after we power off.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out $R/out || fail "cannot mount /out (9p tag out)"
cp /command.sh $R/run/qemu-lab-command.sh
[ -x $R/bin/bash ] || fail "the host's / has no /bin/bash"

echo "$START_MARK uptime $(cut -d' ' -f1 /proc/uptime)"
chroot $R /bin/bash /run/qemu-lab-command.sh </dev/null
rc=$?
echo "$END_MARK rc=$rc uptime $(cut -d' ' -f1 /proc/uptime) ==="
dmesg >$R/out/dmesg.txt 2>/dev/null
echo $rc >$R/out/exit-code
sync
umount $R/out 2>/dev/null
echo o >/proc/sysrq-trigger
sleep 30
EOF
chmod +x "$WORK/initrd/init"
(cd "$WORK/initrd" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.cpio.gz"
say "kernel $KVER and initramfs ready in $(since "$t_prepare") s"

# ---------------------------------------------------------------------------
# Boot.  TCG only: KVM hangs at "Booting from ROM" on these machines.
# ---------------------------------------------------------------------------
t_boot=$(now_us)
# Never -enable-kvm.  -nic none: no network (and no NIC option ROM needed).
# no_timer_check: on a loaded host the emulated 8254 can miss the kernel's
# IO-APIC timer check, which then panics ("IO-APIC + timer doesn't work").
CPU_OPTS=(-smp 2)
((ICOUNT)) && CPU_OPTS=(-icount shift=0 -smp 1)
timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 \
  -accel tcg "${CPU_OPTS[@]}" -m 2048 -nic none \
  -kernel "$KERNEL_IMAGE" -initrd "$WORK/initrd.cpio.gz" \
  -append "console=ttyS0 quiet panic=-1 no_timer_check" \
  -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=host \
  -fsdev local,id=outdir,path="$OUT",security_model=none,multidevs=remap \
  -device virtio-9p-pci,fsdev=outdir,mount_tag=out \
  -nographic -no-reboot </dev/null >"$LOG" 2>&1 &
QPID=$!

# Show the command's output live (the console between the markers), and note
# when the command started: the boot time.
booted=""
tail -n +1 -F --pid="$QPID" "$LOG" 2>/dev/null | tr -d '\r' \
  | sed -u -n "/$START_MARK/,/$END_MARK/{/$START_MARK/d;/$END_MARK/{s/$END_MARK.*//;/./p;d};p}" &
TAILPID=$!
while kill -0 "$QPID" 2>/dev/null; do
  if [[ -z $booted ]] && grep -q "$START_MARK" "$LOG" 2>/dev/null; then
    booted=$(since "$t_boot")
    say "guest booted in $booted s (kernel $KVER), running: $*"
  fi
  sleep 0.2
done
qrc=0
wait "$QPID" || qrc=$?
QPID=""
wait "$TAILPID" 2>/dev/null || true
elapsed=$(since "$t_boot")

tail_log() { say "last lines of $LOG:"; tail -n 40 "$LOG" | tr -d '\r' | sed 's/^/  | /' >&2; }
if ((qrc == 124 || qrc == 137)); then
  tail_log
  die 124 "guest timed out after $TIMEOUT s (--timeout)${booted:+; it had booted in $booted s}"
fi
if [[ -f $OUT/exit-code ]]; then
  rc=$(tr -dc '0-9' <"$OUT/exit-code")
  rc=${rc:-125}
  if ((rc != 0)); then tail_log; fi
  say "command exited $rc; guest ran ${elapsed} s in all; console: $LOG"
  exit "$rc"
fi
tail_log
reason=$(tr -d '\r' <"$LOG" | grep -m1 -o "$FAIL_MARK.*" | sed "s/^$FAIL_MARK *//" || true)
[[ -n $reason ]] || reason=$(tr -d '\r' <"$LOG" | grep -m1 -E "Kernel panic|qemu-system-x86_64:" || true)
[[ -n $reason ]] || reason="qemu exited $qrc before the command finished"
die 125 "guest failed: $reason"
