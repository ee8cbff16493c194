//! Installing the container's compiled seccomp program at the last moment before `execvp`,
//! in libcontainer's executor, for the container's init and its exec processes alike.
//!
//! libcontainer compiles a profile with libseccomp in every process it starts, which costs
//! more than the rest of a container's start put together; berth compiles each distinct
//! profile once (see `seccomp_bpf`) and hands libcontainer a spec without one. The executor
//! runs after libcontainer switched the user and dropped capabilities. Without
//! no_new_privs, loading a filter needs CAP_SYS_ADMIN, which the container usually lacks:
//! it is lent in the effective and permitted sets (never the bounding set, so execve cannot
//! keep it) and dropped again once the filter is in place. The process then ends up exactly
//! as libcontainer would have left it, with the same filter.

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::signal::{SigSet, SigmaskHow};
use oci_spec::runtime::{Capability, Process};

use super::seccomp_bpf::{self, ExecFilter};

/// Which sets `lend_sys_admin` added CAP_SYS_ADMIN to.
#[derive(Clone, Copy, Default)]
pub struct DropSysAdmin {
    effective: bool,
    permitted: bool,
}

/// Adds CAP_SYS_ADMIN to `process`'s effective and permitted sets where it is missing, so
/// that the executor can load the filter; says where, for the executor to drop it again.
pub fn lend_sys_admin(process: &mut Process) -> DropSysAdmin {
    if process.no_new_privileges() == Some(true) {
        return DropSysAdmin::default();
    }
    let Some(mut caps) = process.capabilities().clone() else {
        return DropSysAdmin::default();
    };
    let mut lent = DropSysAdmin::default();
    let mut effective = caps.effective().clone().unwrap_or_default();
    if effective.insert(Capability::SysAdmin) {
        lent.effective = true;
    }
    let mut permitted = caps.permitted().clone().unwrap_or_default();
    if permitted.insert(Capability::SysAdmin) {
        lent.permitted = true;
    }
    caps.set_effective(Some(effective));
    caps.set_permitted(Some(permitted));
    process.set_capabilities(Some(caps));
    lent
}

/// libcontainer's executor for a process whose seccomp filter berth installs itself.
#[derive(Clone)]
pub struct FilterExecutor {
    pub seccomp: &'static ExecFilter,
    pub drop_sys_admin: DropSysAdmin,
}

impl Executor for FilterExecutor {
    fn exec(&self, spec: &oci_spec::runtime::Spec) -> Result<(), ExecutorError> {
        // The shim blocks SIGCHLD and the termination signals for its signalfd, and a
        // blocked mask survives execve: the command must start with none blocked.
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
            .map_err(|e| ExecutorError::Other(format!("sigprocmask: {e}")))?;
        match self.seccomp {
            ExecFilter::None => {}
            ExecFilter::Program(program) => seccomp_bpf::install(program)
                .map_err(|e| ExecutorError::Other(format!("seccomp: {e}")))?,
            ExecFilter::Profile(seccomp) => {
                let notify = libcontainer::seccomp::initialize_seccomp(seccomp)
                    .map_err(|e| ExecutorError::Other(format!("seccomp: {e}")))?;
                if let Some(fd) = notify {
                    // SAFETY: the fd was just created for us and nothing else owns it;
                    // berth's profiles never ask for a notify listener, so it is closed.
                    unsafe { libc::close(fd) };
                }
            }
        }
        // Never exec with the lent capability: failing to drop it fails the exec.
        let drop = |set| {
            caps::drop(None, set, caps::Capability::CAP_SYS_ADMIN)
                .map_err(|e| ExecutorError::Other(format!("drop CAP_SYS_ADMIN: {e}")))
        };
        if self.drop_sys_admin.effective {
            drop(caps::CapSet::Effective)?;
        }
        if self.drop_sys_admin.permitted {
            drop(caps::CapSet::Permitted)?;
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &oci_spec::runtime::Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lends_sys_admin_only_where_missing() {
        let mut p = Process::default();
        p.set_no_new_privileges(Some(false));
        let lent = lend_sys_admin(&mut p);
        let caps = p.capabilities().clone().unwrap();
        assert!(caps.effective().as_ref().unwrap().contains(&Capability::SysAdmin));
        assert!(!caps.bounding().as_ref().unwrap().contains(&Capability::SysAdmin));
        assert!(lent.effective && lent.permitted);
        let lent = lend_sys_admin(&mut p);
        assert!(!lent.effective && !lent.permitted);
    }

    #[test]
    fn no_new_privileges_needs_no_loan() {
        let mut p = Process::default();
        p.set_no_new_privileges(Some(true));
        let lent = lend_sys_admin(&mut p);
        assert!(!lent.effective && !lent.permitted);
        assert!(!p.capabilities().as_ref().unwrap().effective().as_ref().unwrap().contains(&Capability::SysAdmin));
    }
}
