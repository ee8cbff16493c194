//! The container's seccomp profile compiled to BPF once, for its init and exec processes.
//! Compiling a Docker-sized profile with libseccomp costs more than the rest of a
//! container's start put together, and it is the same program every time: the shim compiles
//! a profile once, keeps the program for the container's execs, and keeps it in a cache
//! directory shared by all shims (keyed by a hash of the profile and of libseccomp's version
//! and API level), so a new container with a profile seen before only reads its program.
//! `filter_exec` installs it.
//!
//! The compilation follows libcontainer's `initialize_seccomp`; profiles with parts it does
//! not cover here (filter flags, notify rules, rare architectures) are left to libcontainer.

use std::io::{Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

/// How an exec process gets the container's seccomp filter.
pub enum ExecFilter {
    /// The container has none.
    None,
    /// The compiled program, to install as is.
    Program(Vec<libc::sock_filter>),
    /// Compiled by libcontainer in each exec process.
    Profile(LinuxSeccomp),
}

static FILTER: OnceLock<ExecFilter> = OnceLock::new();

/// The filter for this shim's container; `profile` is read (from the spec) only the first
/// time. `cache` is the directory of programs shared by all shims, if any.
pub fn for_container(
    cache: Option<&Path>,
    profile: impl FnOnce() -> Result<Option<LinuxSeccomp>, String>,
) -> Result<&'static ExecFilter, String> {
    if let Some(f) = FILTER.get() {
        return Ok(f);
    }
    let filter = match profile()? {
        None => ExecFilter::None,
        Some(p) => match compile_cached(&p, cache) {
            Ok(program) => ExecFilter::Program(program),
            Err(why) => {
                eprintln!("berth-shim: seccomp filter left to libcontainer: {why}");
                ExecFilter::Profile(p)
            }
        },
    };
    Ok(FILTER.get_or_init(|| filter))
}

/// Installs `program` in the calling thread, as libseccomp's load does (no flags).
pub fn install(program: &[libc::sock_filter]) -> std::io::Result<()> {
    let len = u16::try_from(program.len())
        .map_err(|_| std::io::Error::other("seccomp program too long"))?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: seccomp(2) reads `len` instructions from the program, which outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `p`'s program, from `cache` when an earlier shim compiled the same profile with the same
/// libseccomp; compiled (and stored there) otherwise. A cache that cannot be read or written
/// only costs the compilation.
fn compile_cached(
    p: &LinuxSeccomp,
    cache: Option<&Path>,
) -> Result<Vec<libc::sock_filter>, String> {
    let Some(dir) = cache else {
        return compile(p);
    };
    let path = dir.join(format!("{}.bpf", cache_key(p)?));
    if let Some(program) = std::fs::read(&path).ok().and_then(|b| decode(&b).ok()) {
        return Ok(program);
    }
    let program = compile(p)?;
    if let Err(e) = store(dir, &path, &program) {
        eprintln!("berth-shim: seccomp cache {}: {e}", path.display());
    }
    Ok(program)
}

/// What the program depends on: the profile, libseccomp's version and the API level it
/// detected on this kernel, the architecture the shim runs on, and the version of what berth
/// adds to libseccomp's program.
fn cache_key(p: &LinuxSeccomp) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let profile = serde_json::to_vec(p).map_err(|e| e.to_string())?;
    let version = libseccomp::ScmpVersion::current().map_err(|e| e.to_string())?;
    let api = libseccomp::get_api();
    let mut h = Sha256::new();
    h.update(format!(
        "{}.{}.{} api={api} arch={} {STUB_VERSION}\n",
        version.major,
        version.minor,
        version.micro,
        std::env::consts::ARCH
    ));
    h.update(&profile);
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Changes whenever `seccomp_enosys` makes a different stub, so that cached programs from
/// an older shim are not installed.
const STUB_VERSION: &str = "enosys-stub=1";

/// Writes the program under a temporary name and renames it into place, so that a reader
/// never sees half a program; the directory is root's alone.
fn store(dir: &Path, path: &Path, program: &[libc::sock_filter]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&encode(program))?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `p`'s program: libseccomp's, behind runc's ENOSYS stub (see `seccomp_enosys`).
pub(super) fn compile(p: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>, String> {
    let program = super::seccomp_enosys::prepend(p, compile_without_stub(p)?)?;
    if program.len() > MAX_INSNS {
        return Err(format!("a program of {} instructions", program.len()));
    }
    Ok(program)
}

/// The program libseccomp makes of `p`, exactly.
pub(super) fn compile_without_stub(p: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>, String> {
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err("filter flags".into());
    }
    if libcontainer::seccomp::is_notify(p) {
        return Err("notify rules".into());
    }
    let e = |err: libseccomp::error::SeccompError| err.to_string();
    let default = action(p.default_action(), p.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(e)?;
    for arch in p.architectures().iter().flatten() {
        ctx.add_arch(architecture(*arch)?).map_err(e)?;
    }
    // As libcontainer: no_new_privs is the process's own setting, not the filter's.
    ctx.set_ctl_nnp(false).map_err(e)?;
    for rule in p.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        let comparators: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| {
                ScmpArgCompare::new(a.index() as u32, operator(a.op(), a.value_two()), a.value())
            })
            .collect();
        let mut indexes: Vec<u32> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| a.index() as u32)
            .collect();
        indexes.sort_unstable();
        let repeated_index = indexes.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            // A name this kernel's libseccomp does not know is skipped, as libcontainer does.
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if comparators.is_empty() {
                ctx.add_rule(act, sc).map_err(e)?;
            } else if repeated_index {
                // One argument compared twice: one rule per comparison (runc's way).
                for c in &comparators {
                    ctx.add_rule_conditional(act, sc, std::slice::from_ref(c))
                        .map_err(e)?;
                }
            } else {
                ctx.add_rule_conditional(act, sc, &comparators).map_err(e)?;
            }
        }
    }
    export(&ctx)
}

/// The program libseccomp would load, read back through a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, String> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just created and is owned by nothing else.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file).map_err(|err| err.to_string())?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|err| err.to_string())?;
    decode(&bytes)
}

/// The kernel's (and libseccomp's export) layout of a program: 8 bytes per instruction.
const INSN: usize = std::mem::size_of::<libc::sock_filter>();
/// The kernel refuses longer programs (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

fn decode(bytes: &[u8]) -> Result<Vec<libc::sock_filter>, String> {
    if bytes.is_empty() || bytes.len() % INSN != 0 || bytes.len() / INSN > MAX_INSNS {
        return Err(format!("a program of {} bytes", bytes.len()));
    }
    Ok(bytes
        .chunks_exact(INSN)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

fn encode(program: &[libc::sock_filter]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(program.len() * INSN);
    for i in program {
        bytes.extend_from_slice(&i.code.to_ne_bytes());
        bytes.extend_from_slice(&[i.jt, i.jf]);
        bytes.extend_from_slice(&i.k.to_ne_bytes());
    }
    bytes
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, String> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(u16::try_from(errno).map_err(|_| format!("trace errno {errno}"))?)
        }
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => return Err("notify action".into()),
    })
}

fn operator(op: LinuxSeccompOperator, value_two: Option<u64>) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value_two.unwrap_or(0)),
    }
}

/// The architectures Docker's profiles name on the hosts berth runs on; others fall back.
pub(super) fn architecture(arch: Arch) -> Result<ScmpArch, String> {
    Ok(match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        other => return Err(format!("architecture {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompBuilder, LinuxSyscallBuilder};

    #[test]
    fn compiles_a_profile_to_a_program() {
        let profile = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActErrno)
            .architectures(vec![Arch::ScmpArchX86_64])
            .syscalls(vec![LinuxSyscallBuilder::default()
                .names(vec!["read".to_string(), "no_such_syscall".to_string()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .build()
                .unwrap()])
            .build()
            .unwrap();
        let program = compile(&profile).unwrap();
        // The last instruction of a libseccomp program is a return.
        assert_eq!(program.last().unwrap().code & 0x07, 0x06);
        let flagged = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActErrno)
            .flags(vec![
                oci_spec::runtime::LinuxSeccompFilterFlag::SeccompFilterFlagLog,
            ])
            .build()
            .unwrap();
        assert!(compile(&flagged).is_err());
    }

    #[test]
    fn programs_are_cached_per_profile_and_a_bad_entry_is_compiled_again() {
        let cache = tempfile::tempdir().unwrap();
        let profile = |names: &[&str]| {
            LinuxSeccompBuilder::default()
                .default_action(LinuxSeccompAction::ScmpActErrno)
                .architectures(vec![Arch::ScmpArchX86_64])
                .syscalls(vec![LinuxSyscallBuilder::default()
                    .names(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                    .action(LinuxSeccompAction::ScmpActAllow)
                    .build()
                    .unwrap()])
                .build()
                .unwrap()
        };
        let (read, write) = (profile(&["read"]), profile(&["read", "write"]));
        let first = compile_cached(&read, Some(cache.path())).unwrap();
        let entries = || std::fs::read_dir(cache.path()).unwrap().count();
        assert_eq!(entries(), 1);
        let bytes = |p: &[libc::sock_filter]| encode(p);
        assert_eq!(
            bytes(&compile_cached(&read, Some(cache.path())).unwrap()),
            bytes(&first)
        );
        assert_ne!(
            bytes(&compile_cached(&write, Some(cache.path())).unwrap()),
            bytes(&first)
        );
        assert_eq!(entries(), 2);
        // A truncated entry is not installed: the profile is compiled and stored again.
        let entry = cache
            .path()
            .join(format!("{}.bpf", cache_key(&read).unwrap()));
        std::fs::write(&entry, [0u8; 5]).unwrap();
        assert_eq!(
            bytes(&compile_cached(&read, Some(cache.path())).unwrap()),
            bytes(&first)
        );
        assert_eq!(std::fs::read(&entry).unwrap(), bytes(&first));
    }
}
