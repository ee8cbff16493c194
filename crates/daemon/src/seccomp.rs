//! berth's default seccomp profile.
//!
//! Equivalent in effect to Docker's default profile (moby
//! `profiles/seccomp/default.json`): every syscall returns `EPERM` unless it
//! is on the allow-list below. Some syscalls are allowed only for specific
//! arguments (`personality`, `socket`, `clone`). Others are allowed only if the
//! container holds the capability the kernel would check for them anyway.
//! Without the capability the kernel would refuse them too, but many of these
//! syscalls have been the entry point for kernel exploits, so we filter them
//! before they reach the kernel.
//!
//! As Docker 20.10, `ptrace` is allowed without `CAP_SYS_PTRACE` on kernels
//! >= 4.8 (whose ptrace can no longer bypass the filter);
//! `process_vm_readv`/`process_vm_writev` still need the capability.

use std::collections::BTreeSet;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// Docker's default capability set, `CAP_`-prefixed.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

// ---------------------------------------------------------------------------
// Unconditionally allowed syscalls, grouped by purpose. Many names exist only
// on some architectures (e.g. `*32`, `*64`, `*_time64` for 32-bit compat).
// Runtimes skip names that are unknown on an architecture.
// ---------------------------------------------------------------------------

/// Process lifecycle, identity and self-management. Any program needs these to
/// start, fork/exec children, reap them and exit. (`clone` is handled
/// separately because its flags must be checked.)
const PROCESS: &[&str] = &[
    "execve", "execveat", "exit", "exit_group", "fork", "vfork", "wait4", "waitid", "waitpid",
    "kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "restart_syscall", "pause",
    "getpid", "getppid", "gettid", "getpgid", "getpgrp", "getsid", "setpgid", "setsid",
    "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "prctl", "seccomp",
    "capget", "capset", "process_mrelease",
];

/// Signal handling, including the legacy 32-bit forms.
const SIGNALS: &[&str] = &[
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
    "sigaltstack", "sigprocmask", "sigreturn", "signalfd", "signalfd4",
];

/// Reading and switching credentials. The kernel checks CAP_SETUID/SETGID
/// itself. These are in the default caps, and su/sudo/gosu-style entrypoints
/// need them.
const CREDENTIALS: &[&str] = &[
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid",
    "getegid32", "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups",
    "getgroups32", "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32",
    "setregid", "setregid32", "setresuid", "setresuid32", "setresgid", "setresgid32",
    "setgroups", "setgroups32", "setfsuid", "setfsuid32", "setfsgid", "setfsgid32",
];

/// Virtual memory management: the loader, malloc and JITs need these. (Memory protection
/// keys, `pkey_*`, are refused as in Docker 20.10's profile; programs fall back without them.)
const MEMORY: &[&str] = &[
    "brk", "mmap", "mmap2", "munmap", "mprotect", "mremap", "madvise", "mincore", "msync",
    "mlock", "mlock2", "mlockall", "munlock", "munlockall", "membarrier", "memfd_create",
    "memfd_secret", "remap_file_pages",
];

/// Thread synchronisation and thread-local storage.
const THREADS: &[&str] =
    &["futex", "futex_time64", "futex_waitv", "get_thread_area", "set_thread_area"];

/// Opening, reading, writing and seeking file descriptors.
const FILE_IO: &[&str] = &[
    "open", "openat", "openat2", "creat", "close", "close_range", "read", "readv", "pread64",
    "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev", "pwritev2", "lseek",
    "_llseek", "dup", "dup2", "dup3", "fcntl", "fcntl64", "ioctl", "flock", "fsync",
    "fdatasync", "sync", "syncfs", "sync_file_range", "fallocate", "ftruncate",
    "ftruncate64", "truncate", "truncate64", "fadvise64", "fadvise64_64", "readahead",
    "copy_file_range", "sendfile", "sendfile64", "splice", "tee", "vmsplice", "pipe",
    "pipe2",
];

/// Metadata and directory operations inside the container's own filesystem.
/// These cannot escape the mount namespace.
const FILESYSTEM: &[&str] = &[
    "access", "faccessat", "faccessat2", "stat", "stat64", "lstat", "lstat64", "fstat",
    "fstat64", "fstatat64", "newfstatat", "statx", "statfs", "statfs64", "fstatfs",
    "fstatfs64", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat",
    "rmdir", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
    "unlink", "unlinkat", "readlink", "readlinkat", "chmod", "fchmod", "fchmodat", "chown",
    "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32", "umask", "utime",
    "utimes", "utimensat", "utimensat_time64", "futimesat", "mknod", "mknodat",
];

/// Extended attributes.
const XATTR: &[&str] = &[
    "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr",
    "listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
];

/// Event loops, notification fds and async I/O (including io_uring, which Docker
/// also allows).
const EVENTS: &[&str] = &[
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait",
    "epoll_wait_old", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
    "fanotify_mark", "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "io_uring_setup", "io_uring_enter",
    "io_uring_register",
];

/// Socket operations on existing sockets. `socket` itself is argument-filtered.
const SOCKETS: &[&str] = &[
    "accept", "accept4", "bind", "connect", "listen", "shutdown", "socketpair",
    "getsockname", "getpeername", "getsockopt", "setsockopt", "recv", "recvfrom",
    "recvmsg", "recvmmsg", "recvmmsg_time64", "send", "sendto", "sendmsg", "sendmmsg",
    "socketcall",
];

/// System V and POSIX IPC. Each container has its own IPC namespace.
const IPC: &[&str] = &[
    "ipc", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "semctl", "shmget", "shmat", "shmdt", "shmctl", "mq_open",
    "mq_unlink", "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
];

/// Reading clocks, sleeping and timers. The `*adjtime*` calls are only
/// read-only without CAP_SYS_TIME, which the kernel enforces.
const TIME: &[&str] = &[
    "time", "times", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres",
    "clock_getres_time64", "clock_nanosleep", "clock_nanosleep_time64", "nanosleep",
    "alarm", "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "adjtimex", "clock_adjtime", "clock_adjtime64",
];

/// Scheduling, resource limits and system information. The kernel checks the
/// privileged forms (e.g. raising priority needs CAP_SYS_NICE).
const SCHED_AND_INFO: &[&str] = &[
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr",
    "sched_setattr", "sched_getparam", "sched_setparam", "sched_getscheduler",
    "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "getpriority", "setpriority",
    "ioprio_get", "ioprio_set", "getrlimit", "ugetrlimit", "setrlimit", "prlimit64",
    "getrusage", "getcpu", "sysinfo", "uname", "getrandom",
];

/// Unprivileged self-sandboxing.
const SANDBOXING: &[&str] =
    &["landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"];

const ALWAYS_ALLOWED: &[&[&str]] = &[
    PROCESS, SIGNALS, CREDENTIALS, MEMORY, THREADS, FILE_IO, FILESYSTEM, XATTR, EVENTS,
    SOCKETS, IPC, TIME, SCHED_AND_INFO, SANDBOXING,
];

/// Architecture-specific helpers the C runtime uses (TLS setup, cache flushes,
/// LDT). They are chosen by the host architecture, as Docker does.
const ARCH_SPECIFIC: &[&str] = if cfg!(target_arch = "x86_64") {
    &["arch_prctl", "modify_ldt"]
} else if cfg!(target_arch = "aarch64") {
    &["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"]
} else if cfg!(target_arch = "powerpc64") {
    &["sync_file_range2", "swapcontext"]
} else if cfg!(target_arch = "s390x") {
    &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"]
} else if cfg!(target_arch = "riscv64") {
    &["riscv_flush_icache"]
} else {
    &[]
};

/// Syscalls that are allowed only when the container holds the capability.
/// With CAP_SYS_ADMIN, `clone` and `clone3` are allowed without argument
/// checks.
const CAPABILITY_GATED: &[(&str, &[&str])] = &[
    // Namespaces, mounts, hostnames, quotas, fanotify, BPF/perf and syslog:
    // everything CAP_SYS_ADMIN guards in the kernel.
    (
        "CAP_SYS_ADMIN",
        &[
            "clone", "clone3", "unshare", "setns", "mount", "umount", "umount2",
            "mount_setattr", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
            "fspick", "sethostname", "setdomainname", "quotactl", "quotactl_fd", "name_to_handle_at",
            "fanotify_init", "lookup_dcookie", "bpf", "perf_event_open", "syslog",
        ],
    ),
    // Inspecting or modifying other processes.
    (
        "CAP_SYS_PTRACE",
        &["ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise"],
    ),
    // Opening files by handle bypasses path-based checks (the "shocker" exploit).
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    // Kernel modules.
    ("CAP_SYS_MODULE", &["init_module", "finit_module", "delete_module"]),
    // Rebooting. kexec_load/kexec_file_load are never allowed.
    ("CAP_SYS_BOOT", &["reboot"]),
    // chroot is in the default capability set, so it is normally allowed.
    ("CAP_SYS_CHROOT", &["chroot"]),
    // Process accounting.
    ("CAP_SYS_PACCT", &["acct"]),
    // Raw port I/O.
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    // Setting the system clock. Time is not namespaced.
    ("CAP_SYS_TIME", &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    // Hanging up the terminal.
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    // NUMA memory policy.
    ("CAP_SYS_NICE", &["get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind"]),
    // Reading the kernel log.
    ("CAP_SYSLOG", &["syslog"]),
    // The split-out BPF and perf capabilities.
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// `personality(2)` values that are allowed: PER_LINUX, PER_LINUX32,
/// UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query the current persona).
/// Other personas can turn off ASLR (ADDR_NO_RANDOMIZE) or map page zero.
const PERSONALITY_ALLOWED: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// AF_VSOCK. Host/VM sockets are not namespaced, so `socket` is allowed for
/// every other address family.
const AF_VSOCK: u64 = 40;

/// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
/// | CLONE_NEWPID | CLONE_NEWNET (= 0x7E020000, as in Docker).
const CLONE_NAMESPACE_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

/// s390 passes the clone flags as the second argument.
const CLONE_FLAGS_ARG: usize = if cfg!(target_arch = "s390x") { 1 } else { 0 };

/// Seccomp architectures for the host. On other hosts `None` means native
/// only.
///
/// Unlike Docker, x86_64 hosts leave out the x32 ABI: it is disabled in most
/// kernels and almost no binary uses it, while each architecture adds a third
/// to the filter that every container start compiles (about 5 ms here). x32
/// system calls then get the filter's bad-architecture action, as on a kernel
/// without x32.
fn architectures() -> Option<Vec<Arch>> {
    if cfg!(target_arch = "x86_64") {
        Some(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86])
    } else if cfg!(target_arch = "aarch64") {
        Some(vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm])
    } else if cfg!(target_arch = "s390x") {
        Some(vec![Arch::ScmpArchS390x, Arch::ScmpArchS390])
    } else if cfg!(target_arch = "riscv64") {
        Some(vec![Arch::ScmpArchRiscv64])
    } else {
        None
    }
}

/// Accepts "CAP_SYS_ADMIN", "SYS_ADMIN" or "cap_sys_admin".
fn normalize_cap(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// Builds one syscall rule. The builders fail only when a required field is
/// missing. All oci-spec seccomp fields have defaults, so this static input
/// cannot fail.
fn rule(
    names: impl IntoIterator<Item = String>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Vec<LinuxSeccompArg>,
) -> LinuxSyscall {
    let mut b = LinuxSyscallBuilder::default()
        .names(names.into_iter().collect::<Vec<_>>())
        .action(action);
    if let Some(errno) = errno_ret {
        b = b.errno_ret(errno);
    }
    if !args.is_empty() {
        b = b.args(args);
    }
    b.build().expect("LinuxSyscall: all fields defaulted, build cannot fail")
}

fn arg(index: usize, value: u64, op: LinuxSeccompOperator) -> LinuxSeccompArg {
    arg2(index, value, None, op)
}

fn arg2(index: usize, value: u64, value_two: Option<u64>, op: LinuxSeccompOperator) -> LinuxSeccompArg {
    let mut b = LinuxSeccompArgBuilder::default().index(index).value(value).op(op);
    if let Some(v2) = value_two {
        b = b.value_two(v2);
    }
    b.build()
        .expect("LinuxSeccompArg: all fields defaulted, build cannot fail")
}

/// berth's default seccomp profile for a container with `capabilities`. Pass
/// the effective bounding set (e.g. [`DEFAULT_CAPABILITIES`] plus `--cap-add`,
/// minus `--cap-drop`). Names may be given with or without the `CAP_` prefix.
pub fn default_profile(capabilities: &[String]) -> LinuxSeccomp {
    default_profile_for(capabilities, &kernel_release())
}

/// [`default_profile`] for a kernel `release` (moby's `minKernel` conditions).
fn default_profile_for(capabilities: &[String], release: &str) -> LinuxSeccomp {
    let caps: BTreeSet<String> = capabilities.iter().map(|c| normalize_cap(c)).collect();
    let sys_admin = caps.contains("CAP_SYS_ADMIN");

    // One unconditional allow rule. Using a set removes names that more than
    // one group or capability grants.
    let mut allowed: BTreeSet<&str> = ALWAYS_ALLOWED.iter().flat_map(|g| g.iter().copied()).collect();
    allowed.extend(ARCH_SPECIFIC.iter().copied());
    for (cap, names) in CAPABILITY_GATED {
        if caps.contains(*cap) {
            allowed.extend(names.iter().copied());
        }
    }
    if kernel_at_least(release, "4.8") {
        allowed.insert("ptrace");
    }

    let allow = LinuxSeccompAction::ScmpActAllow;
    let mut syscalls = vec![rule(allowed.iter().map(|s| s.to_string()), allow, None, vec![])];

    // Rules with argument conditions. Conditions within one rule are ANDed, so
    // each allowed personality value needs its own rule.
    for &persona in PERSONALITY_ALLOWED {
        syscalls.push(rule(
            ["personality".to_string()],
            allow,
            None,
            vec![arg(0, persona, LinuxSeccompOperator::ScmpCmpEq)],
        ));
    }
    syscalls.push(rule(
        ["socket".to_string()],
        allow,
        None,
        vec![arg(0, AF_VSOCK, LinuxSeccompOperator::ScmpCmpNe)],
    ));

    if !sys_admin {
        // clone for threads and fork is fine. Creating namespaces is not.
        // MASKED_EQ: (flags & value) == valueTwo, i.e. none of the namespace
        // flags are set.
        let no_ns = arg2(
            CLONE_FLAGS_ARG,
            CLONE_NAMESPACE_FLAGS,
            Some(0),
            LinuxSeccompOperator::ScmpCmpMaskedEq,
        );
        syscalls.push(rule(["clone".to_string()], allow, None, vec![no_ns]));
        // clone3 passes its flags in a struct in memory, which seccomp cannot
        // inspect. ENOSYS makes glibc and musl fall back to clone, which is
        // filtered above.
        syscalls.push(rule(
            ["clone3".to_string()],
            LinuxSeccompAction::ScmpActErrno,
            Some(ENOSYS),
            vec![],
        ));
    }

    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(EPERM)
        .syscalls(syscalls)
        .build()
        .map(|mut profile| {
            profile.set_architectures(architectures());
            profile
        })
        .expect("LinuxSeccomp: all fields defaulted, build cannot fail")
}

/// A seccomp profile in Docker's format (`--security-opt seccomp=<json>`, as the CLI sends
/// the file's content), turned into the OCI form for a container whose bounding set is
/// `capabilities`: rules apply only where their `includes`/`excludes` (capabilities, Go
/// architecture names, minimum kernel) match, as moby's `setupSeccomp` decides.
/// `Ok(None)`: a profile with neither a default action nor rules, which disables seccomp.
pub fn docker_profile(json: &str, capabilities: &[String]) -> Result<Option<LinuxSeccomp>, String> {
    docker_profile_for(json, capabilities, go_arch(), &kernel_release())
}

fn docker_profile_for(
    json: &str,
    capabilities: &[String],
    arch: &str,
    kernel: &str,
) -> Result<Option<LinuxSeccomp>, String> {
    use serde_json::{json, Map, Value};
    let decode_error = |e: serde_json::Error| format!("Decoding seccomp profile failed: {e}");
    let profile: Map<String, Value> = serde_json::from_str(json).map_err(decode_error)?;
    let list = |v: Option<&Value>| -> Vec<Value> { v.and_then(Value::as_array).cloned().unwrap_or_default() };
    let strings = |v: Option<&Value>| -> Vec<String> {
        list(v).iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
    };
    let default_action = profile.get("defaultAction").and_then(Value::as_str).unwrap_or_default();
    let rules = list(profile.get("syscalls"));
    if default_action.is_empty() && rules.is_empty() {
        return Ok(None);
    }
    let mut architectures = strings(profile.get("architectures"));
    let arch_map = list(profile.get("archMap"));
    if !architectures.is_empty() && !arch_map.is_empty() {
        return Err("'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'".into());
    }
    // archMap: only the native architecture's entry counts, with its sub-architectures.
    let native = native_scmp_arch(arch);
    if let Some(entry) = arch_map.iter().find(|e| e.get("architecture").and_then(Value::as_str) == Some(native)) {
        architectures.push(native.to_string());
        architectures.extend(strings(entry.get("subArchitectures")));
    }
    let caps: BTreeSet<String> = capabilities.iter().map(|c| normalize_cap(c)).collect();
    let mut syscalls = Vec::new();
    for rule in &rules {
        let (inc, exc) = (rule.get("includes"), rule.get("excludes"));
        fn field<'a>(side: Option<&'a Value>, key: &str) -> Option<&'a Value> {
            side.and_then(|s| s.get(key))
        }
        let excluded = strings(field(exc, "arches")).iter().any(|a| a == arch)
            || strings(field(exc, "caps")).iter().any(|c| caps.contains(c))
            || field(exc, "minKernel").and_then(Value::as_str).is_some_and(|k| kernel_at_least(kernel, k));
        let included = {
            let arches = strings(field(inc, "arches"));
            (arches.is_empty() || arches.iter().any(|a| a == arch))
                && strings(field(inc, "caps")).iter().all(|c| caps.contains(c))
                && field(inc, "minKernel").and_then(Value::as_str).map_or(true, |k| kernel_at_least(kernel, k))
        };
        if excluded || !included {
            continue;
        }
        let mut names = strings(rule.get("names"));
        if let Some(name) = rule.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            if !names.is_empty() {
                return Err("use either 'name' or 'names'".into());
            }
            names.push(name.to_string());
        }
        let mut out = json!({"names": names, "action": rule.get("action").cloned().unwrap_or(Value::Null)});
        for key in ["errnoRet", "args"] {
            if let Some(v) = rule.get(key).filter(|v| !v.is_null()) {
                out[key] = v.clone();
            }
        }
        syscalls.push(out);
    }
    let mut out = json!({"defaultAction": default_action, "syscalls": syscalls});
    if !architectures.is_empty() {
        out["architectures"] = json!(architectures);
    }
    for key in ["defaultErrnoRet", "listenerPath", "listenerMetadata", "flags"] {
        if let Some(v) = profile.get(key).filter(|v| !v.is_null()) {
            out[key] = v.clone();
        }
    }
    serde_json::from_value(out).map(Some).map_err(|e| format!("invalid seccomp profile: {e}"))
}

/// The host's architecture as Go names it (`runtime.GOARCH`), which profiles' `arches` use.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The seccomp name of a Go architecture, for `archMap`.
fn native_scmp_arch(go_arch: &str) -> &'static str {
    match go_arch {
        "amd64" => "SCMP_ARCH_X86_64",
        "386" => "SCMP_ARCH_X86",
        "arm64" => "SCMP_ARCH_AARCH64",
        "arm" => "SCMP_ARCH_ARM",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        _ => "",
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether `release` (`6.1.0-13-amd64`) is at least `min` (`4.8`), by major and minor.
fn kernel_at_least(release: &str, min: &str) -> bool {
    let version = |s: &str| -> (u32, u32) {
        let mut parts = s.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    version(release) >= version(min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn caps(extra: &[&str]) -> Vec<String> {
        DEFAULT_CAPABILITIES.iter().chain(extra).map(|s| s.to_string()).collect()
    }

    /// Syscalls that the unconditional allow rule covers (no args, action ALLOW).
    fn unconditional(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    fn allows(p: &LinuxSeccomp, name: &str) -> bool {
        unconditional(p).iter().any(|n| n == name)
    }

    fn rules_for<'a>(p: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        p.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|s| s.names().iter().any(|n| n == name))
            .collect()
    }

    #[test]
    fn json_shape() {
        let p = default_profile(&caps(&[]));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        let arches: Vec<&str> = v["architectures"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        if cfg!(target_arch = "x86_64") {
            assert_eq!(arches, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
        } else if cfg!(target_arch = "aarch64") {
            assert_eq!(arches, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
        }
        let syscalls = v["syscalls"].as_array().unwrap();
        assert_eq!(syscalls[0]["action"], "SCMP_ACT_ALLOW");
        // Round trip through serde to make sure it parses back.
        let back: LinuxSeccomp = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn common_syscalls_allowed() {
        let p = default_profile(&caps(&[]));
        for name in [
            "execve", "mmap", "munmap", "mprotect", "brk", "futex", "rt_sigreturn",
            "rt_sigaction", "rt_sigprocmask", "exit", "exit_group", "wait4", "read", "write",
            "openat", "close", "fstat", "newfstatat", "getdents64", "ioctl", "fcntl", "dup2",
            "pipe2", "set_tid_address", "set_robust_list", "rseq", "prlimit64", "getrandom",
            "uname", "getpid", "kill", "setuid", "setgid", "chown", "chroot", "vfork", "fork",
            "connect", "bind", "sendto", "recvfrom", "poll", "epoll_wait", "nanosleep",
            "clock_gettime", "chdir", "getcwd", "lseek", "capset", "prctl",
        ] {
            assert!(allows(&p, name), "{name} should be allowed");
        }
        if cfg!(target_arch = "x86_64") {
            assert!(allows(&p, "arch_prctl"));
        }
        // socket is allowed via an argument rule.
        assert_eq!(rules_for(&p, "socket").len(), 1);
    }

    #[test]
    fn dangerous_syscalls_blocked_by_default() {
        let p = default_profile(&caps(&[]));
        for name in [
            "mount", "umount2", "unshare", "setns", "process_vm_readv", "kexec_load",
            "kexec_file_load", "reboot", "init_module", "bpf", "perf_event_open", "syslog",
            "open_by_handle_at", "settimeofday", "clone3", "acct", "iopl", "keyctl", "add_key",
            "userfaultfd", "swapon", "pivot_root", "uselib", "nfsservctl",
        ] {
            assert!(!allows(&p, name), "{name} must not be allowed by default");
        }
        // clone3 gets ENOSYS so libc falls back to clone.
        let clone3 = rules_for(&p, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(38));
        // Without any capabilities, chroot is not allowed.
        assert!(!allows(&default_profile(&[]), "chroot"));
    }

    #[test]
    fn clone_rule_masks_namespace_flags() {
        let p = default_profile(&caps(&[]));
        let clone = rules_for(&p, "clone");
        assert_eq!(clone.len(), 1, "clone only via the masked rule");
        let args = clone[0].args().as_ref().unwrap();
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(args[0].value(), 0x7E02_0000);
        assert_eq!(args[0].value_two(), Some(0));
        assert_eq!(clone[0].action(), LinuxSeccompAction::ScmpActAllow);
        // Plain thread creation flags do not hit the mask.
        let thread_flags: u64 = 0x3d0f00; // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
        assert_eq!(thread_flags & args[0].value(), 0);
    }

    #[test]
    fn personality_only_specific_values() {
        let p = default_profile(&caps(&[]));
        assert!(!allows(&p, "personality"));
        let mut vals: Vec<u64> = rules_for(&p, "personality")
            .iter()
            .map(|r| {
                let a = r.args().as_ref().unwrap();
                assert_eq!(a.len(), 1);
                assert_eq!(a[0].op(), LinuxSeccompOperator::ScmpCmpEq);
                a[0].value()
            })
            .collect();
        vals.sort();
        assert_eq!(vals, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
    }

    #[test]
    fn sys_admin_unlocks_mount_and_namespaces() {
        let p = default_profile(&caps(&["CAP_SYS_ADMIN"]));
        for name in ["mount", "umount2", "unshare", "setns", "clone", "clone3", "sethostname"] {
            assert!(allows(&p, name), "{name} should be allowed with CAP_SYS_ADMIN");
        }
        // No leftover restrictive rules for clone/clone3.
        assert_eq!(rules_for(&p, "clone").len(), 1);
        assert_eq!(rules_for(&p, "clone3").len(), 1);
        // Still blocked: not covered by SYS_ADMIN.
        assert!(!allows(&p, "process_vm_readv"));
        assert!(!allows(&p, "kexec_load"));
        // The prefix is optional.
        assert!(allows(&default_profile(&["sys_admin".into()]), "mount"));
    }

    #[test]
    fn other_capability_gates() {
        let p = default_profile(&caps(&["CAP_SYS_PTRACE", "CAP_SYS_BOOT", "CAP_SYS_MODULE"]));
        for name in ["ptrace", "process_vm_readv", "kcmp", "reboot", "init_module"] {
            assert!(allows(&p, name), "{name}");
        }
        assert!(!allows(&p, "kexec_load"));
        assert!(!allows(&p, "mount"));
    }

    #[test]
    fn no_duplicate_or_conflicting_names() {
        for extra in [&[][..], &["CAP_SYS_ADMIN", "CAP_SYSLOG", "CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE"][..]] {
            let p = default_profile(&caps(extra));
            let names = unconditional(&p);
            let set: BTreeSet<&String> = names.iter().collect();
            assert_eq!(set.len(), names.len(), "duplicate names in allow rules");
            // A name with an argument rule or an errno rule must not also be
            // allowed unconditionally (that would defeat the rule, and
            // libseccomp rejects conflicting actions).
            let mut actions: HashMap<String, Vec<(LinuxSeccompAction, bool)>> = HashMap::new();
            for s in p.syscalls().as_ref().unwrap() {
                for n in s.names() {
                    actions.entry(n.clone()).or_default().push((s.action(), s.args().is_some()));
                }
            }
            for (name, a) in actions {
                if a.len() > 1 {
                    assert!(
                        a.iter().all(|&(act, has_args)| act == LinuxSeccompAction::ScmpActAllow && has_args),
                        "{name} has conflicting rules: {a:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn default_capabilities_list() {
        assert_eq!(DEFAULT_CAPABILITIES.len(), 14);
        assert!(DEFAULT_CAPABILITIES.iter().all(|c| c.starts_with("CAP_")));
        assert!(DEFAULT_CAPABILITIES.contains(&"CAP_SYS_CHROOT"));
        assert!(!DEFAULT_CAPABILITIES.contains(&"CAP_SYS_ADMIN"));
    }

    #[test]
    fn docker_profiles_keep_the_rules_that_match_this_container() {
        let profile = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
                {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
            ]
        }"#;
        let names = |caps: &[&str], kernel: &str| -> Vec<String> {
            let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
            let p = docker_profile_for(profile, &caps, "amd64", kernel).unwrap().unwrap();
            assert_eq!(p.architectures().clone().unwrap(), [Arch::ScmpArchX86_64, Arch::ScmpArchX86]);
            p.syscalls().clone().unwrap().iter().flat_map(|s| s.names().clone()).collect()
        };
        assert_eq!(names(&["CAP_SYS_ADMIN"], "6.1.0-13-amd64"), ["read", "mount", "ptrace", "chroot", "kill"]);
        assert_eq!(names(&["SYS_CHROOT"], "4.4.0"), ["read", "kill"]);
        let p = docker_profile_for(profile, &[], "amd64", "6.1").unwrap().unwrap();
        let kill = p.syscalls().clone().unwrap().into_iter().find(|s| s.names() == &["kill"]).unwrap();
        assert_eq!((kill.errno_ret(), kill.args().as_ref().map(Vec::len)), (Some(38), Some(1)));
        // Empty: no filter at all. Both architecture forms, or both name forms: refused.
        assert_eq!(docker_profile_for("{}", &[], "amd64", "6.1").unwrap(), None);
        let both = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#;
        assert!(docker_profile_for(both, &[], "amd64", "6.1").is_err());
        let names_twice = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#;
        assert_eq!(docker_profile_for(names_twice, &[], "amd64", "6.1").unwrap_err(), "use either 'name' or 'names'");
        assert!(docker_profile_for("nope", &[], "amd64", "6.1").unwrap_err().starts_with("Decoding seccomp profile failed"));
    }

    #[test]
    fn ptrace_needs_the_capability_only_before_4_8() {
        assert!(allows(&default_profile_for(&caps(&[]), "6.1.0-13-amd64"), "ptrace"));
        assert!(!allows(&default_profile_for(&caps(&[]), "6.1.0"), "process_vm_readv"));
        assert!(!allows(&default_profile_for(&caps(&[]), "4.4.0-210-generic"), "ptrace"));
        assert!(allows(&default_profile_for(&caps(&["CAP_SYS_PTRACE"]), "4.4.0"), "ptrace"));
    }
}
