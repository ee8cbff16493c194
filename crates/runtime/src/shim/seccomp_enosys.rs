//! The -ENOSYS stub runc puts in front of every seccomp program it loads
//! (libcontainer/seccomp/patchbpf), rewritten for berth's own compilation.
//!
//! A profile denies what it does not name with its default action, EPERM in Docker's. For a
//! system call newer than the profile that is the wrong answer: libc falls back to an older
//! call on ENOSYS ("this kernel does not have it"), not on EPERM, so glibc 2.39's
//! `fchmodat2` (452) breaks under a profile written before it existed. runc therefore answers
//! ENOSYS for every number above the largest one the profile names on that architecture,
//! and leaves everything else to the profile's program. berth does the same, so images
//! behave as under Docker.
//!
//! The rules, as runc's:
//! - no stub when the default action lets calls through (allow, log, trace), nor when it is
//!   already ENOSYS;
//! - "largest" is over every name of every rule, whatever its action, resolved with this
//!   host's libseccomp for each architecture the profile names plus the native one; names
//!   libseccomp does not know are skipped, and an architecture none resolves on gets no
//!   section;
//! - x86_64 and x32 share one kernel architecture (AUDIT_ARCH_X86_64); an x32 call has bit 30
//!   of its number set and is held against x32's largest number (which has it set too), or
//!   passed to the program when the profile does not name x32 (and the other way round);
//! - a kernel architecture the stub has no section for goes straight to the program (whose
//!   bad-architecture action handles it).

use std::collections::BTreeMap;

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};

/// The kernel's AUDIT_ARCH_* values, which `seccomp_data.arch` holds.
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

/// The bit of an x32 system call's number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// SECCOMP_RET_ERRNO | ENOSYS.
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// The largest system call number a profile names on one kernel architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// An architecture with one system call table.
    Plain(u32),
    /// x86_64's kernel: its own calls and x32's (bit 30 set); `None` where the profile does
    /// not cover that ABI.
    X86_64 {
        native: Option<u32>,
        x32: Option<u32>,
    },
}

/// `program` with the stub in front when `p` calls for one; `program` unchanged otherwise.
pub(super) fn prepend(
    p: &LinuxSeccomp,
    program: Vec<libc::sock_filter>,
) -> Result<Vec<libc::sock_filter>, String> {
    if !wants_stub(p) {
        return Ok(program);
    }
    let mut full = stub(&largest_syscalls(p)?)?;
    full.extend(program);
    Ok(full)
}

/// runc's rule: a permissive default already lets new calls reach the kernel, and a default
/// of ENOSYS already says what the stub would.
fn wants_stub(p: &LinuxSeccomp) -> bool {
    match p.default_action() {
        LinuxSeccompAction::ScmpActAllow
        | LinuxSeccompAction::ScmpActLog
        | LinuxSeccompAction::ScmpActTrace => false,
        LinuxSeccompAction::ScmpActErrno => p.default_errno_ret() != Some(libc::ENOSYS as u32),
        _ => true,
    }
}

/// Each kernel architecture the filter covers, with the largest number `p` names on it.
fn largest_syscalls(p: &LinuxSeccomp) -> Result<BTreeMap<u32, Limit>, String> {
    let mut arches = vec![ScmpArch::native()];
    for arch in p.architectures().iter().flatten() {
        arches.push(super::seccomp_bpf::architecture(*arch)?);
    }
    let mut limits = BTreeMap::new();
    for arch in arches {
        let arch = if arch == ScmpArch::Native {
            ScmpArch::native()
        } else {
            arch
        };
        let audit = audit_arch(arch)?;
        let Some(largest) = largest_on(p, arch) else {
            continue;
        };
        let limit = limits.entry(audit).or_insert(match arch {
            ScmpArch::X8664 | ScmpArch::X32 => Limit::X86_64 {
                native: None,
                x32: None,
            },
            _ => Limit::Plain(largest),
        });
        match (arch, limit) {
            (ScmpArch::X8664, Limit::X86_64 { native, .. }) => *native = Some(largest),
            (ScmpArch::X32, Limit::X86_64 { x32, .. }) => *x32 = Some(largest),
            _ => {}
        }
    }
    Ok(limits)
}

/// The largest number of a name in `p` on `arch` (x32's with bit 30 set, as libseccomp
/// gives them); names it does not know, or that are pseudo-calls there (negative), count not.
fn largest_on(p: &LinuxSeccomp, arch: ScmpArch) -> Option<u32> {
    p.syscalls()
        .iter()
        .flatten()
        .flat_map(|rule| rule.names())
        .filter_map(|name| ScmpSyscall::from_name_by_arch(name, arch).ok())
        .map(i32::from)
        .filter(|nr| *nr > 0)
        .max()
        .map(|nr| nr as u32)
}

fn audit_arch(arch: ScmpArch) -> Result<u32, String> {
    Ok(match arch {
        ScmpArch::X86 => AUDIT_ARCH_I386,
        ScmpArch::X8664 | ScmpArch::X32 => AUDIT_ARCH_X86_64,
        ScmpArch::Arm => AUDIT_ARCH_ARM,
        ScmpArch::Aarch64 => AUDIT_ARCH_AARCH64,
        other => return Err(format!("architecture {other:?} in the ENOSYS stub")),
    })
}

/// Where a jump goes.
#[derive(Clone, Copy)]
enum To {
    /// The next instruction.
    Next,
    /// Over `n` instructions.
    Skip(u32),
    /// The first instruction of architecture `i`'s section.
    Section(usize),
    /// The ENOSYS return.
    Enosys,
    /// The profile's program, just after the stub.
    Program,
}

enum Insn {
    Load(u32),
    Jeq(u32, To, To),
    Jgt(u32, To, To),
    Jset(u32, To, To),
    Ja(To),
    Ret(u32),
}

/// The stub's program: a jump table on the architecture, then one section per architecture
/// comparing the call's number with the largest, then the ENOSYS return.
///
/// ```text
///       ld [4]                      ; arch
///       jeq ARCH_i, section_i       ; one per architecture
///       ja program
/// sect: ld [0]                      ; nr
///       (x86_64) jset X32_BIT, ...  ; x32 calls to their own limit, or to the program
///       jgt LARGEST, enosys
///       ja program
/// enosys: ret ERRNO(ENOSYS)
/// ```
fn stub(limits: &BTreeMap<u32, Limit>) -> Result<Vec<libc::sock_filter>, String> {
    use To::*;
    let mut insns = vec![Insn::Load(DATA_ARCH)];
    for (i, audit) in limits.keys().enumerate() {
        insns.push(Insn::Jeq(*audit, Section(i), Next));
    }
    insns.push(Insn::Ja(Program));
    let mut sections = Vec::new();
    for limit in limits.values() {
        sections.push(insns.len());
        insns.push(Insn::Load(DATA_NR));
        match *limit {
            Limit::Plain(largest) => insns.push(Insn::Jgt(largest, Enosys, Next)),
            Limit::X86_64 {
                native: Some(n),
                x32: Some(x),
            } => {
                insns.push(Insn::Jset(X32_SYSCALL_BIT, Skip(1), Next));
                insns.push(Insn::Jgt(n, Enosys, Skip(1)));
                insns.push(Insn::Jgt(x, Enosys, Next));
            }
            Limit::X86_64 {
                native: Some(n),
                x32: None,
            } => {
                insns.push(Insn::Jset(X32_SYSCALL_BIT, Program, Next));
                insns.push(Insn::Jgt(n, Enosys, Next));
            }
            Limit::X86_64 {
                native: None,
                x32: Some(x),
            } => {
                insns.push(Insn::Jset(X32_SYSCALL_BIT, Next, Program));
                insns.push(Insn::Jgt(x, Enosys, Next));
            }
            Limit::X86_64 {
                native: None,
                x32: None,
            } => {}
        }
        insns.push(Insn::Ja(Program));
    }
    let enosys = insns.len();
    insns.push(Insn::Ret(RET_ENOSYS));
    let program = insns.len();

    let offset = |pc: usize, to: To| -> u32 {
        let target = match to {
            Next => pc + 1,
            Skip(n) => pc + 1 + n as usize,
            Section(i) => sections[i],
            Enosys => enosys,
            Program => program,
        };
        (target - pc - 1) as u32
    };
    let short = |pc: usize, to: To| {
        u8::try_from(offset(pc, to)).map_err(|_| "ENOSYS stub jump too long".to_string())
    };
    let mut out = Vec::with_capacity(insns.len());
    for (pc, insn) in insns.iter().enumerate() {
        let (code, jt, jf, k) = match *insn {
            Insn::Load(off) => (BPF_LD_W_ABS, 0, 0, off),
            Insn::Jeq(k, t, f) => (BPF_JEQ_K, short(pc, t)?, short(pc, f)?, k),
            Insn::Jgt(k, t, f) => (BPF_JGT_K, short(pc, t)?, short(pc, f)?, k),
            Insn::Jset(k, t, f) => (BPF_JSET_K, short(pc, t)?, short(pc, f)?, k),
            Insn::Ja(to) => (BPF_JA, 0, 0, offset(pc, to)),
            Insn::Ret(k) => (BPF_RET_K, 0, 0, k),
        };
        out.push(libc::sock_filter { code, jt, jf, k });
    }
    Ok(out)
}

// Classic BPF opcodes (linux/filter.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JA: u16 = 0x05;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGT_K: u16 = 0x25;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Arch, LinuxSeccompBuilder, LinuxSyscallBuilder};

    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_KILL_THREAD: u32 = 0;

    /// Runs a classic BPF program on a `seccomp_data` for (arch, nr, no arguments); knows
    /// the instructions the stub and libseccomp's programs use, and panics on others.
    fn run(program: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let data = |off: u32| match off {
            DATA_NR => nr,
            DATA_ARCH => arch,
            _ => 0,
        };
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = program[pc];
            let jump = |cond: bool| 1 + if cond { i.jt } else { i.jf } as usize;
            pc += match i.code {
                0x20 => {
                    a = data(i.k);
                    1
                }
                0x54 => {
                    a &= i.k;
                    1
                }
                0x05 => 1 + i.k as usize,
                0x15 => jump(a == i.k),
                0x25 => jump(a > i.k),
                0x35 => jump(a >= i.k),
                0x45 => jump(a & i.k != 0),
                0x06 => return i.k,
                code => panic!("opcode {code:#x} at {pc}"),
            };
        }
    }

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }

    fn same(a: &[libc::sock_filter], b: &[libc::sock_filter]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
    }

    #[test]
    fn stub_for_x86_64_with_x32_and_i386() {
        let limits = BTreeMap::from([
            (AUDIT_ARCH_I386, Limit::Plain(450)),
            (
                AUDIT_ARCH_X86_64,
                Limit::X86_64 {
                    native: Some(449),
                    x32: Some(X32_SYSCALL_BIT | 449),
                },
            ),
        ]);
        let got = stub(&limits).unwrap();
        let want = [
            insn(0x20, 0, 0, 4),
            insn(0x15, 2, 0, AUDIT_ARCH_I386),
            insn(0x15, 4, 0, AUDIT_ARCH_X86_64),
            insn(0x05, 0, 0, 9),
            // i386
            insn(0x20, 0, 0, 0),
            insn(0x25, 6, 0, 450),
            insn(0x05, 0, 0, 6),
            // x86_64 and x32
            insn(0x20, 0, 0, 0),
            insn(0x45, 1, 0, X32_SYSCALL_BIT),
            insn(0x25, 2, 1, 449),
            insn(0x25, 1, 0, X32_SYSCALL_BIT | 449),
            insn(0x05, 0, 0, 1),
            insn(0x06, 0, 0, RET_ENOSYS),
        ];
        assert!(
            same(&got, &want),
            "{:?}",
            got.iter()
                .map(|i| (i.code, i.jt, i.jf, i.k))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn stub_answers_enosys_only_above_each_architectures_largest() {
        let program = |limits: BTreeMap<u32, Limit>| {
            let mut p = stub(&limits).unwrap();
            p.push(insn(0x06, 0, 0, RET_EPERM));
            p
        };
        let both = program(BTreeMap::from([
            (AUDIT_ARCH_I386, Limit::Plain(450)),
            (
                AUDIT_ARCH_X86_64,
                Limit::X86_64 {
                    native: Some(449),
                    x32: Some(X32_SYSCALL_BIT | 300),
                },
            ),
        ]));
        assert_eq!(run(&both, AUDIT_ARCH_X86_64, 449), RET_EPERM);
        assert_eq!(run(&both, AUDIT_ARCH_X86_64, 450), RET_ENOSYS);
        assert_eq!(
            run(&both, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 300),
            RET_EPERM
        );
        assert_eq!(
            run(&both, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 301),
            RET_ENOSYS
        );
        assert_eq!(run(&both, AUDIT_ARCH_I386, 450), RET_EPERM);
        assert_eq!(run(&both, AUDIT_ARCH_I386, 451), RET_ENOSYS);
        // An architecture without a section is the program's to judge.
        assert_eq!(run(&both, AUDIT_ARCH_AARCH64, 10_000), RET_EPERM);

        // x86_64 without x32: x32 calls all go to the program.
        let native = program(BTreeMap::from([(
            AUDIT_ARCH_X86_64,
            Limit::X86_64 {
                native: Some(449),
                x32: None,
            },
        )]));
        assert_eq!(run(&native, AUDIT_ARCH_X86_64, 450), RET_ENOSYS);
        assert_eq!(
            run(&native, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 1000),
            RET_EPERM
        );
        // x32 without x86_64: native calls all go to the program.
        let x32 = program(BTreeMap::from([(
            AUDIT_ARCH_X86_64,
            Limit::X86_64 {
                native: None,
                x32: Some(X32_SYSCALL_BIT | 449),
            },
        )]));
        assert_eq!(run(&x32, AUDIT_ARCH_X86_64, 1000), RET_EPERM);
        assert_eq!(
            run(&x32, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 450),
            RET_ENOSYS
        );
        // No architecture at all: a stub that always passes.
        let none = program(BTreeMap::new());
        assert_eq!(run(&none, AUDIT_ARCH_X86_64, 1000), RET_EPERM);
    }

    fn profile(default: LinuxSeccompAction, errno: Option<u32>, arches: Vec<Arch>) -> LinuxSeccomp {
        let mut b = LinuxSeccompBuilder::default()
            .default_action(default)
            .architectures(arches)
            .syscalls(vec![
                LinuxSyscallBuilder::default()
                    .names(vec![
                        "read".to_string(),
                        "openat".to_string(),
                        "no_such_call".to_string(),
                    ])
                    .action(LinuxSeccompAction::ScmpActAllow)
                    .build()
                    .unwrap(),
                // Rules with the default action count too (runc's rule).
                LinuxSyscallBuilder::default()
                    .names(vec!["pivot_root".to_string()])
                    .action(default)
                    .build()
                    .unwrap(),
            ]);
        if let Some(e) = errno {
            b = b.default_errno_ret(e);
        }
        b.build().unwrap()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn largest_numbers_per_architecture_from_libseccomp() {
        let p = profile(
            LinuxSeccompAction::ScmpActErrno,
            None,
            vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        );
        // pivot_root: 155 on x86_64, 217 on i386; openat: 257 on x86_64, 295 on i386.
        let limits = largest_syscalls(&p).unwrap();
        assert_eq!(
            limits,
            BTreeMap::from([
                (AUDIT_ARCH_I386, Limit::Plain(295)),
                (
                    AUDIT_ARCH_X86_64,
                    Limit::X86_64 {
                        native: Some(257),
                        x32: Some(X32_SYSCALL_BIT | 257)
                    }
                ),
            ])
        );
        // No architectures named: the native one is implied (as runc does since 1.2).
        let bare = profile(LinuxSeccompAction::ScmpActErrno, None, vec![]);
        assert_eq!(
            largest_syscalls(&bare).unwrap(),
            BTreeMap::from([(
                AUDIT_ARCH_X86_64,
                Limit::X86_64 {
                    native: Some(257),
                    x32: None
                }
            )])
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn compiled_programs_get_the_stub_unless_the_default_lets_calls_through() {
        let errno = profile(
            LinuxSeccompAction::ScmpActErrno,
            None,
            vec![Arch::ScmpArchX86_64],
        );
        let program = super::super::seccomp_bpf::compile(&errno).unwrap();
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, 0), RET_ALLOW); // read
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, 257), RET_ALLOW); // openat
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, 169), RET_EPERM); // reboot: unnamed, older
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, 258), RET_ENOSYS); // newer than openat
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, 452), RET_ENOSYS); // fchmodat2
                                                                       // x32 is not in the profile: libseccomp's program judges it (bad architecture).
        assert_eq!(
            run(&program, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 452),
            RET_KILL_THREAD
        );

        let kill = profile(
            LinuxSeccompAction::ScmpActKillProcess,
            None,
            vec![Arch::ScmpArchX86_64],
        );
        let program = super::super::seccomp_bpf::compile(&kill).unwrap();
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, 169), RET_KILL_PROCESS);
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, 452), RET_ENOSYS);

        // Permissive defaults and an ENOSYS default: libseccomp's program, untouched.
        for (action, errno) in [
            (LinuxSeccompAction::ScmpActAllow, None),
            (LinuxSeccompAction::ScmpActLog, None),
            (LinuxSeccompAction::ScmpActErrno, Some(libc::ENOSYS as u32)),
        ] {
            let p = profile(action, errno, vec![Arch::ScmpArchX86_64]);
            assert!(!wants_stub(&p));
            let compiled = super::super::seccomp_bpf::compile(&p).unwrap();
            let plain = super::super::seccomp_bpf::compile_without_stub(&p).unwrap();
            assert!(same(&compiled, &plain));
        }
        assert!(wants_stub(&profile(
            LinuxSeccompAction::ScmpActErrno,
            Some(1),
            vec![]
        )));
        assert!(wants_stub(&profile(
            LinuxSeccompAction::ScmpActTrap,
            None,
            vec![]
        )));
    }
}
