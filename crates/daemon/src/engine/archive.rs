//! `docker cp` on the engine side: stat a path in a container, tar it up, or extract a tar
//! into a directory of it (`/containers/{id}/archive`).
//!
//! berthd runs as root, so every path is resolved with `openat2(RESOLVE_IN_ROOT)` from a
//! descriptor of the container's root: a symlink in the container (`etc -> /etc`) is followed
//! as the container would follow it and can never lead to the host. Extraction goes through
//! the store's layer unpacker, which applies the same rule to every tar entry.
//!
//! A running container is reached through `/proc/<pid>/root`, so its volumes, binds and tmpfs
//! are seen exactly as inside it. A stopped one has its overlay mounted for the duration of
//! the call (always unmounted, on error too) and paths under a volume or bind destination are
//! sent to that volume's directory, as Docker does.

use super::mounts::MountKind;
use super::nofollow::{self, Node};
use super::{Engine, Error, Result};
use crate::state::Status;
use chrono::{DateTime, Utc};
use nix::errno::Errno;
use nix::fcntl::{openat2, readlinkat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::mount::{umount2, MntFlags};
use nix::sys::stat::{fstatat, FileStat, Mode};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What `X-Docker-Container-Path-Stat` carries (moby's `types.ContainerPathStat`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits, which the docker CLI decodes.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// The container's filesystem for one call; unmounts a temporary overlay when dropped.
pub struct ContainerFs {
    root: OwnedFd,
    /// (destination, host directory) of volumes and binds, only for a stopped container.
    mounts: Vec<(Vec<String>, PathBuf)>,
    temp_mount: Option<PathBuf>,
    /// The name the client used, for Docker's messages.
    name: String,
    /// `--read-only`, and every mount's destination with whether it is writable.
    readonly_rootfs: bool,
    writable_mounts: Vec<(Vec<String>, bool)>,
}

impl Drop for ContainerFs {
    fn drop(&mut self) {
        if let Some(dir) = self.temp_mount.take() {
            if let Err(e) = umount2(&dir, MntFlags::MNT_DETACH) {
                tracing::warn!("cp: unmount {}: {e}", dir.display());
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// A path resolved to a directory descriptor plus the name of the entry in it.
pub struct Resolved {
    pub parent: OwnedFd,
    /// The final component; "." for a root (of the container or of a volume).
    pub name: String,
    /// The container path, cleaned, for messages and link targets.
    pub path: String,
    /// The path as given, as messages quote it.
    pub given: String,
}

/// Splits a container path into components, letting ".." stop at "/" as the kernel does.
fn clean(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

fn open_in_root(root: &OwnedFd, comps: &[String], flags: OFlag) -> nix::Result<OwnedFd> {
    let rel = if comps.is_empty() {
        ".".to_string()
    } else {
        comps.join("/")
    };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root.as_raw_fd(), rel.as_str(), how).map(own)
}

/// Opens a directory the daemon trusts (a volume, `/proc/<pid>/root`, our mount point).
fn open_dir_path(p: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(p)?;
    Ok(OwnedFd::from(f))
}

impl ContainerFs {
    /// The descriptor to resolve `comps` from and the components left to resolve there.
    fn base_for<'a>(&'a self, comps: &'a [String]) -> io::Result<(OwnedFd, &'a [String])> {
        let best = self
            .mounts
            .iter()
            .filter(|(dest, _)| comps.starts_with(dest))
            .max_by_key(|(dest, _)| dest.len());
        match best {
            Some((dest, host)) => Ok((open_dir_path(host)?, &comps[dest.len()..])),
            None => Ok((self.root.try_clone()?, comps)),
        }
    }

    /// Resolves every component but the last (symlinks followed inside the container).
    pub fn resolve_parent(&self, path: &str) -> Result<Resolved> {
        let comps = clean(path);
        let shown = format!("/{}", comps.join("/"));
        let (base, rest) = self.base_for(&comps)?;
        let given = path.to_string();
        let Some((name, dir)) = rest.split_last() else {
            return Ok(Resolved {
                parent: base,
                name: ".".into(),
                path: shown,
                given,
            });
        };
        // Docker quotes a missing path as given, a file in the way by its cleaned path.
        let parent =
            open_in_root(&base, dir, OFlag::O_DIRECTORY | OFlag::O_RDONLY).map_err(|e| {
                let quoted = if e == Errno::ENOTDIR {
                    shown.as_str()
                } else {
                    path
                };
                not_found_or(e, quoted, &self.name)
            })?;
        // A trailing `/` or `/.` asks for a directory, through a final symlink too (as
        // Docker's lstat of such a path does): a file fails, a dangling link is not found.
        if path.ends_with('/') || path.ends_with("/.") {
            open_in_root(&base, rest, OFlag::O_DIRECTORY | OFlag::O_RDONLY)
                .map_err(|e| not_found_or(e, path, &self.name))?;
        }
        Ok(Resolved {
            parent,
            name: name.clone(),
            path: shown,
            given,
        })
    }

    /// Docker's refusal to extract into a read-only rootfs or volume, decided on the
    /// requested path as given (the mount whose destination is its longest prefix).
    pub fn check_writable(&self, path: &str) -> Result<()> {
        let comps = clean(path);
        let mount = self
            .writable_mounts
            .iter()
            .filter(|(dest, _)| comps.starts_with(dest))
            .max_by_key(|(dest, _)| dest.len());
        match mount {
            Some((_, false)) => Err(Error::InvalidParameter(
                "mounted volume is marked read-only".into(),
            )),
            None if self.readonly_rootfs => Err(Error::InvalidParameter(
                "container rootfs is marked read-only".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Opens `path` as a directory, following every symlink inside the container.
    pub fn open_dir(&self, path: &str) -> Result<OwnedFd> {
        let comps = clean(path);
        let (base, rest) = self.base_for(&comps)?;
        open_in_root(&base, rest, OFlag::O_DIRECTORY | OFlag::O_RDONLY).map_err(|e| match e {
            Errno::ENOTDIR => Error::InvalidParameter("extraction point is not a directory".into()),
            e => not_found_or(e, path, &self.name),
        })
    }
}

fn not_found_or(e: Errno, path: &str, container: &str) -> Error {
    match e {
        Errno::ENOENT => Error::NotFound(format!(
            "Could not find the file {path} in container {container}"
        )),
        // A file where the path needs a directory: Docker's lstat error, a 500 (it names its
        // host path; we name the container's).
        Errno::ENOTDIR => Error::Internal(format!("lstat {path}: not a directory")),
        e => Error::Internal(format!("{path}: {e}")),
    }
}

/// Go's `os.FileMode` for a `st_mode`.
fn go_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    match st_mode & libc::S_IFMT {
        libc::S_IFDIR => m |= 1 << 31,
        libc::S_IFLNK => m |= 1 << 27,
        libc::S_IFBLK => m |= 1 << 26,
        libc::S_IFCHR => m |= (1 << 26) | (1 << 21),
        libc::S_IFIFO => m |= 1 << 25,
        libc::S_IFSOCK => m |= 1 << 24,
        _ => {}
    }
    if st_mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

fn stat_entry(r: &Resolved, container: &str) -> Result<FileStat> {
    let st = fstatat(
        Some(r.parent.as_raw_fd()),
        r.name.as_str(),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| not_found_or(e, &r.given, container))?;
    Ok(st)
}

/// The stat Docker reports: the entry itself (a symlink is not followed), with a symlink's
/// target made absolute in the container.
pub fn path_stat(r: &Resolved, container: &str) -> Result<PathStat> {
    let st = stat_entry(r, container)?;
    let mut link_target = String::new();
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        let t = readlinkat(Some(r.parent.as_raw_fd()), r.name.as_str())
            .map_err(|e| not_found_or(e, &r.path, container))?;
        let t = t.to_string_lossy().into_owned();
        link_target = if t.starts_with('/') {
            format!("/{}", clean(&t).join("/"))
        } else {
            let mut c = clean(&r.path);
            c.pop();
            format!("/{}", clean(&format!("{}/{t}", c.join("/"))).join("/"))
        };
    }
    let name = match r.path.rsplit('/').next() {
        Some("") | None => "/".to_string(),
        Some(n) => n.to_string(),
    };
    let mtime =
        DateTime::<Utc>::from_timestamp(st.st_mtime, st.st_mtime_nsec as u32).unwrap_or_default();
    Ok(PathStat {
        name,
        size: st.st_size,
        mode: go_mode(st.st_mode),
        mtime: mtime.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        link_target,
    })
}

/// Writes `r` (recursively) as a tar whose top entry is called `top` ("." for contents).
pub fn write_tar(r: &Resolved, top: &str, out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    match append(&mut b, &r.parent, OsStr::new(&r.name), top.as_bytes()) {
        // Removed since its stat (a running container): Docker's walk skips what it cannot
        // stat, and sends an empty archive.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        r => r?,
    }
    b.into_inner()?.flush()
}

/// Appends an entry with `name` (and `link`) exactly as given, the way Go's `archive/tar`
/// writes Docker's headers (moby's archive package asks for `FormatPAX`): a ustar header
/// when every field fits, a long name split into ustar's `prefix` when it can be; otherwise
/// a PAX extended header (`path`, `linkpath`, `uid`, `gid`, `size`) ahead of a ustar header
/// holding what fits. The tar crate's path setters are not used: they drop a leading "./",
/// which docker's CLI needs to see in a `dir/.` archive to rebase the entries.
pub(super) fn append_entry<W: Write>(
    b: &mut tar::Builder<W>,
    mut h: tar::Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    const NAME_LEN: usize = 100;
    const MAX_ID: u64 = 0o7777777; // 7 octal digits
    const MAX_SIZE: u64 = 0o77777777777; // 11 octal digits
    let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut ustar = true;
    if name.len() > NAME_LEN || !name.is_ascii() {
        pax.push(("path", name.to_vec()));
        ustar &= split_ustar_path(name).is_some();
    }
    if let Some(link) = link.filter(|l| l.len() > NAME_LEN || !l.is_ascii()) {
        pax.push(("linkpath", link.to_vec()));
        ustar = false;
    }
    for (key, value) in [("uid", h.uid()?), ("gid", h.gid()?)] {
        if value > MAX_ID {
            pax.push((key, value.to_string().into_bytes()));
            ustar = false;
        }
    }
    if h.size()? > MAX_SIZE {
        pax.push(("size", h.size()?.to_string().into_bytes()));
        ustar = false;
    }

    let old = h.as_old_mut();
    old.name = [0; NAME_LEN];
    old.linkname = [0; NAME_LEN];
    if ustar {
        let (prefix, rest) = split_ustar_path(name).unwrap_or((&[], name));
        old.name[..rest.len()].copy_from_slice(rest);
        if let Some(link) = link {
            old.linkname[..link.len()].copy_from_slice(link);
        }
        if let Some(u) = h.as_ustar_mut() {
            u.prefix = [0; 155];
            u.prefix[..prefix.len()].copy_from_slice(prefix);
        }
    } else {
        pax.sort_by(|a, b| a.0.cmp(b.0));
        let records: Vec<u8> = pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        let mut x = tar::Header::new_ustar();
        set_truncated(&mut x.as_old_mut().name, &pax_header_name(name));
        x.set_entry_type(tar::EntryType::XHeader);
        x.set_mode(0);
        x.set_uid(0);
        x.set_gid(0);
        x.set_mtime(0);
        x.set_size(records.len() as u64);
        x.set_cksum();
        b.append(&x, records.as_slice())?;
        // What does not fit is left to the PAX records, as Go leaves it.
        set_truncated(&mut h.as_old_mut().name, name);
        if let Some(link) = link {
            set_truncated(&mut h.as_old_mut().linkname, link);
        }
        for (key, value) in [("uid", h.uid()?), ("gid", h.gid()?)] {
            if value > MAX_ID {
                let field = if key == "uid" {
                    &mut h.as_old_mut().uid
                } else {
                    &mut h.as_old_mut().gid
                };
                field.copy_from_slice(b"0000000\0");
            }
        }
        if h.size()? > MAX_SIZE {
            h.as_old_mut().size.copy_from_slice(b"00000000000\0");
        }
    }
    // Go writes the device numbers of every entry (zero for a non-device) as octal.
    if let Some(u) = h.as_ustar_mut() {
        for field in [&mut u.dev_major, &mut u.dev_minor] {
            if *field == [0; 8] {
                *field = *b"0000000\0";
            }
        }
    }
    h.set_cksum();
    b.append(&h, data)
}

/// Go's `splitUSTARPath`: a long ASCII name cut at a '/' into `prefix` (155 bytes) and
/// `name` (100 bytes), a directory's trailing '/' staying with the name.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 || !name.is_ascii() {
        return None;
    }
    let mut len = name.len().min(156);
    if len == name.len() && name[len - 1] == b'/' {
        len -= 1;
    }
    let i = name[..len].iter().rposition(|&c| c == b'/')?;
    let suffix = name.len() - i - 1;
    (i > 0 && suffix > 0 && suffix <= 100 && i <= 155).then(|| (&name[..i], &name[i + 1..]))
}

/// One PAX record, `"<len> <key>=<value>\n"`, its length counting its own digits.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + body.to_string().len();
    if (body + len.to_string().len()) != len {
        len = body + len.to_string().len();
    }
    [format!("{len} {key}=").as_bytes(), value, b"\n"].concat()
}

/// Go names an entry's PAX header `<dir>/PaxHeaders.0/<file>` (cleaned, like `path.Join`).
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let name = String::from_utf8_lossy(name);
    let (dir, file) = name
        .rsplit_once('/')
        .map_or(("", name.as_ref()), |(d, f)| (d, f));
    let joined: Vec<&str> = dir
        .split('/')
        .chain(["PaxHeaders.0", file])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    joined.join("/").into_bytes()
}

/// Fills a header field with the ASCII bytes of `value` that fit, as Go's best effort does
/// (a '/' cut at the end is dropped so a file does not read as a directory).
fn set_truncated(field: &mut [u8], value: &[u8]) {
    let ascii: Vec<u8> = value.iter().copied().filter(u8::is_ascii).collect();
    field.fill(0);
    let n = ascii.len().min(field.len());
    field[..n].copy_from_slice(&ascii[..n]);
    if ascii.len() > field.len() {
        let kept = ascii[..field.len() - 1]
            .iter()
            .rposition(|&c| c != b'/')
            .map_or(0, |p| p + 1);
        if field[field.len() - 1] == b'/' {
            field[kept..].fill(0);
        }
    }
}

/// The header Docker's archiver writes for an entry with stat `st` (size left at 0).
pub(super) fn header_for(st: &FileStat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
        // Both fit: a ustar header's fields take 21 bits.
        let _ = h.set_device_major(libc::major(st.st_rdev));
        let _ = h.set_device_minor(libc::minor(st.st_rdev));
    }
    // With the file type bits, as Docker's archive package writes the mode.
    h.set_mode(st.st_mode & (libc::S_IFMT | 0o7777));
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    name_owners(&mut h);
    h
}

/// Fills a header's user and group names from its ids as Docker's tars carry them: Go's
/// tar looks the ids up on the host (the daemon's /etc/passwd and /etc/group, not the
/// container's) and caches them for the process's life; so do we. Unknown ids stay nameless.
pub fn name_owners(h: &mut tar::Header) {
    static NAMES: std::sync::OnceLock<(HashMap<u64, String>, HashMap<u64, String>)> =
        std::sync::OnceLock::new();
    let (users, groups) =
        NAMES.get_or_init(|| (ids_by_name("/etc/passwd"), ids_by_name("/etc/group")));
    if let Some(n) = h.uid().ok().and_then(|u| users.get(&u)) {
        let _ = h.set_username(n);
    }
    if let Some(n) = h.gid().ok().and_then(|g| groups.get(&g)) {
        let _ = h.set_groupname(n);
    }
}

/// `name:x:id:…` lines → id → name, the first name of an id winning (as getpwuid).
fn ids_by_name(path: &str) -> HashMap<u64, String> {
    let mut out = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(id)) = (fields.next(), fields.nth(1)) else {
            continue;
        };
        if let Ok(id) = id.parse() {
            out.entry(id).or_insert_with(|| name.to_string());
        }
    }
    out
}

/// Appends `name` in `dir` and, for a directory, everything under it. Each entry is pinned
/// by a descriptor (`nofollow`) before anything is read from it, so a running container that
/// swaps a name for a symlink or a device node mid-walk gets that archived, never followed.
fn append<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &OwnedFd,
    name: &OsStr,
    path: &[u8],
) -> io::Result<()> {
    let node = Node::open(dir, name)?;
    // A copy: a directory's node is let go before descending.
    let st = &{ node.st };
    match nofollow::kind(st) {
        libc::S_IFDIR => {
            let fd = node.open_dir()?;
            // One descriptor per level of a deep tree is enough.
            drop(node);
            let h = header_for(st, tar::EntryType::Directory);
            append_entry(b, h, &[path, b"/"].concat(), None, io::empty())?;
            for n in nofollow::names(&fd)? {
                match append(b, &fd, &n, &[path, b"/", n.as_bytes()].concat()) {
                    // Removed since the listing (a running container): as Docker's walk.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    r => r?,
                }
            }
        }
        libc::S_IFREG => {
            let f = node.open_file()?;
            let size = st.st_size.max(0) as u64;
            let mut h = header_for(st, tar::EntryType::Regular);
            h.set_size(size);
            // A file that changes size while we read it must still fill exactly the size
            // the header announced.
            let data = f.take(size).chain(io::repeat(0)).take(size);
            append_entry(b, h, path, None, data)?;
        }
        libc::S_IFLNK => {
            let t = node.read_link()?;
            let h = header_for(st, tar::EntryType::Symlink);
            append_entry(b, h, path, Some(t.as_bytes()), io::empty())?;
        }
        fmt @ (libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO) => {
            let kind = match fmt {
                libc::S_IFCHR => tar::EntryType::Char,
                libc::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            };
            append_entry(b, header_for(st, kind), path, None, io::empty())?;
        }
        // Sockets cannot be archived; Docker skips them too.
        _ => {}
    }
    Ok(())
}

fn own(fd: std::os::fd::RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just returned by a successful openat and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

impl Engine {
    /// Runs `f` on the container's filesystem in a blocking thread; a stopped container's
    /// lifecycle lock is held so it cannot start (and mount the same overlay) meanwhile.
    pub async fn with_container_fs<T: Send + 'static>(
        self: &std::sync::Arc<Self>,
        name: &str,
        f: impl FnOnce(&Engine, &ContainerFs) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let c = self.container(name)?;
        // Only a stopped container needs it: a running one is read through its own mounts,
        // and a slow `cp` reader must not hold up `stop`.
        let _op = if c.snapshot().state.status == Status::Running {
            None
        } else {
            Some(c.op.lock().await)
        };
        let (engine, name) = (self.clone(), name.to_string());
        tokio::task::spawn_blocking(move || {
            let fs = engine.container_fs(&name)?;
            f(&engine, &fs)
        })
        .await?
    }

    /// Who owns what `cp -a` extracts: the container's `User` (as Docker's copyUIDGID),
    /// or None to keep the archive's owners. Blocking.
    pub fn copy_owner(&self, name: &str) -> Result<Option<(u32, u32)>> {
        let rec = self.container(name)?.snapshot();
        let spec = rec.config.user.clone().unwrap_or_default();
        if spec.is_empty() {
            return Ok(None);
        }
        let image = self.store.container_image(&rec.image_id)?;
        let mounts = self.store.prepare_rootfs(&rec.id, &image)?;
        let user = super::user::resolve(&spec, &super::user::layer_dirs(&mounts))
            .map_err(Error::InvalidParameter)?;
        Ok(Some((user.uid, user.gid)))
    }

    /// The container's filesystem: its live root when running, else its overlay mounted
    /// for this call. Blocking.
    fn container_fs(&self, name: &str) -> Result<ContainerFs> {
        let c = self.container(name)?;
        let rec = c.snapshot();
        let readonly_rootfs = rec.host_config.readonly_rootfs == Some(true);
        let writable_mounts = rec
            .mounts
            .iter()
            .map(|m| (clean(&m.destination), m.rw))
            .collect();
        if rec.state.status == Status::Running && rec.state.pid > 0 {
            let root = open_dir_path(std::path::Path::new(&format!(
                "/proc/{}/root",
                rec.state.pid
            )))?;
            return Ok(ContainerFs {
                root,
                mounts: Vec::new(),
                temp_mount: None,
                name: name.to_string(),
                readonly_rootfs,
                writable_mounts,
            });
        }
        let image = self.store.container_image(&rec.image_id)?;
        let layers = self.store.prepare_rootfs(&rec.id, &image)?;
        let dir = self.paths.exec_root.join("cp").join(format!(
            "{}-{:016x}",
            rec.id,
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut fs = ContainerFs {
            root: open_dir_path(&dir)?,
            mounts: Vec::new(),
            temp_mount: None,
            name: name.to_string(),
            readonly_rootfs,
            writable_mounts,
        };
        for m in &layers {
            if let Err(e) = m.mount_on(&dir, false) {
                let _ = std::fs::remove_dir(&dir);
                return Err(Error::Internal(format!("mount rootfs: {e}")));
            }
            fs.temp_mount = Some(dir.clone());
        }
        fs.root = open_dir_path(&dir)?;
        for m in &rec.mounts {
            let host = match m.kind {
                MountKind::Volume => self.volumes.data_dir(&m.name),
                MountKind::Bind => PathBuf::from(&m.source),
                MountKind::Tmpfs => continue,
            };
            fs.mounts.push((clean(&m.destination), host));
        }
        Ok(fs)
    }
}

/// Reads a request body handed over chunk by chunk from the async side.
pub struct ChannelReader {
    pub rx: tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>,
    pub cur: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.cur = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Sends a response body chunk by chunk to the async side.
pub struct ChannelWriter(pub tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Extracts `tar` into the directory `path` of the container. Blocking.
///
/// The upload is spooled to an unnamed file under `spool_dir` first so Docker's refusals
/// (entries outside the destination, a directory overwritten by a file when
/// `no_overwrite_dir_non_dir`) are found before anything is written.
pub fn extract(
    fs: &ContainerFs,
    path: &str,
    tar: &mut dyn Read,
    spool_dir: &std::path::Path,
    no_overwrite_dir_non_dir: bool,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let dir = fs.open_dir(path)?;
    fs.check_writable(path)?;
    let fd = nix::fcntl::open(
        spool_dir,
        OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| Error::Internal(format!("spool upload: {e}")))?;
    let mut spool = File::from(own(fd));
    io::copy(tar, &mut spool)
        .map_err(|e| Error::InvalidParameter(format!("Error processing tar file: {e}")))?;
    let dest = format!("/{}", clean(path).join("/"));
    use std::io::Seek;
    spool.rewind()?;
    let entries = check_entries(&mut spool, &dir, &dest, no_overwrite_dir_non_dir)?;
    spool.rewind()?;
    let target = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    berth_store::extract_tar(&mut spool, &target)
        .map_err(|e| Error::InvalidParameter(format!("Error processing tar file: {e}")))?;
    if let Some((uid, gid)) = owner {
        for comps in &entries {
            let Some((name, parent)) = comps.split_last() else {
                continue;
            };
            // Resolved inside the destination again: an entry may have become a symlink.
            let Ok(pfd) = open_in_root(&dir, parent, OFlag::O_DIRECTORY | OFlag::O_RDONLY) else {
                continue;
            };
            match nix::unistd::fchownat(
                Some(pfd.as_raw_fd()),
                name.as_str(),
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(Error::Internal(format!("chown {}: {e}", comps.join("/")))),
            }
        }
    }
    Ok(())
}

/// Docker's checks on an upload, against what exists in `dir` (resolved inside it).
fn check_entries(
    spool: &mut File,
    dir: &OwnedFd,
    dest: &str,
    no_overwrite_dir_non_dir: bool,
) -> Result<Vec<Vec<String>>> {
    let mut seen = Vec::new();
    let fail = |m: String| {
        Error::InvalidParameter(format!("Error processing tar file(exit status 1): {m}"))
    };
    let mut archive = tar::Archive::new(berth_store::CappedTar::new(spool));
    for entry in archive.entries().map_err(|e| fail(e.to_string()))? {
        let entry = entry.map_err(|e| fail(e.to_string()))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut depth = 0i32;
        for c in raw.split('/') {
            match c {
                "" | "." => {}
                ".." => depth -= 1,
                _ => depth += 1,
            }
            if depth < 0 {
                return Err(fail(format!("{raw:?} is outside of {dest:?}")));
            }
        }
        let comps = clean(&raw);
        seen.push(comps.clone());
        let Some((name, parent)) = comps.split_last() else {
            continue;
        };
        // The layer unpacker would turn these into overlay whiteouts (deletions); refuse
        // rather than let an upload hide files.
        if name.starts_with(".wh.") {
            return Err(fail(format!(
                "{raw:?}: names starting with .wh. are reserved"
            )));
        }
        if !no_overwrite_dir_non_dir {
            continue;
        }
        let Ok(pfd) = open_in_root(dir, parent, OFlag::O_DIRECTORY | OFlag::O_RDONLY) else {
            continue;
        };
        let Ok(st) = fstatat(
            Some(pfd.as_raw_fd()),
            name.as_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) else {
            continue;
        };
        let existing_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let full = format!("{}/{}", dest.trim_end_matches('/'), comps.join("/"));
        match (
            existing_dir,
            entry.header().entry_type() == tar::EntryType::Directory,
        ) {
            (true, false) => {
                return Err(fail(format!(
                    "cannot overwrite directory {full:?} with non-directory {dest:?}"
                )))
            }
            (false, true) => {
                return Err(fail(format!(
                    "cannot overwrite non-directory {full:?} with directory {dest:?}"
                )))
            }
            _ => {}
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers as Go's `archive/tar` writes Docker's (compared byte for byte with a
    /// `docker cp` from dockerd 20.10): ustar, a long name split into `prefix`, else PAX.
    #[test]
    fn headers_are_ustar_or_pax_as_go_writes_them() {
        let dir = "d".repeat(100);
        let split = format!("t/{dir}/file");
        let long = format!("t/{}", "c".repeat(120));
        let mut b = tar::Builder::new(Vec::new());
        let header_of = |kind, mode| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(0);
            h
        };
        let h = header_of(tar::EntryType::Regular, 0o100644);
        for name in [split.as_str(), long.as_str(), "./h\u{e9}llo"] {
            append_entry(&mut b, h.clone(), name.as_bytes(), None, io::empty()).unwrap();
        }
        let l = header_of(tar::EntryType::Symlink, 0o120777);
        let target = format!("/{long}");
        append_entry(&mut b, l, b"t/link", Some(target.as_bytes()), io::empty()).unwrap();
        let out = b.into_inner().unwrap();

        let block = |i: usize| &out[i * 512..(i + 1) * 512];
        let text = |i: usize, r: std::ops::Range<usize>| {
            let f = &block(i)[r];
            let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        // Block 0: the split name. Then for each other entry: the PAX header, its records,
        // and the entry's own header with the name cut to what fits.
        assert_eq!(&block(0)[257..265], b"ustar\x0000");
        assert_eq!(
            (text(0, 345..500), text(0, 0..100)),
            (format!("t/{dir}"), "file".into())
        );
        assert_eq!(&block(0)[329..345], b"0000000\x000000000\x00");
        assert_eq!(block(1)[156], b'x');
        let pax_name: String = format!("t/PaxHeaders.0/{}", &long[2..])
            .chars()
            .take(100)
            .collect();
        assert_eq!(text(1, 0..100), pax_name);
        assert_eq!(text(2, 0..512), format!("132 path={long}\n"));
        assert_eq!(text(3, 0..100), &long[..100]);
        assert_eq!(&block(3)[257..265], b"ustar\x0000");
        assert_eq!(text(4, 0..100), "PaxHeaders.0/hllo");
        assert_eq!(text(5, 0..512), "17 path=./h\u{e9}llo\n");
        assert_eq!(text(6, 0..100), "./hllo");
        assert_eq!(text(7, 0..100), "t/PaxHeaders.0/link");
        assert_eq!(text(8, 0..512), format!("137 linkpath={target}\n"));
        assert_eq!(text(9, 157..257), &target[..100]);

        let mut archive = tar::Archive::new(&out[..]);
        let got: Vec<(String, Option<String>)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name().unwrap().map(|l| l.display().to_string());
                (e.path().unwrap().display().to_string(), link)
            })
            .collect();
        assert_eq!(
            got,
            [
                (split, None),
                (long.clone(), None),
                ("./h\u{e9}llo".into(), None),
                ("t/link".into(), Some(format!("/{long}"))),
            ]
        );
    }

    #[test]
    fn clean_stops_at_root() {
        assert_eq!(clean("/../../etc/./x/"), vec!["etc", "x"]);
        assert!(clean("/").is_empty());
    }

    #[test]
    fn go_modes() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_mode(libc::S_IFREG | 0o4644), (1 << 23) | 0o644);
    }

    #[test]
    fn symlink_to_host_path_stays_inside() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("evil")).unwrap();
        let fs = ContainerFs {
            root: open_dir_path(root.path()).unwrap(),
            mounts: Vec::new(),
            temp_mount: None,
            name: "c".into(),
            readonly_rootfs: false,
            writable_mounts: Vec::new(),
        };
        // /etc does not exist inside this root, so the walk must fail rather than reach the host.
        assert!(matches!(
            fs.resolve_parent("/evil/passwd"),
            Err(Error::NotFound(_))
        ));
        std::fs::create_dir(root.path().join("etc")).unwrap();
        let r = fs.resolve_parent("/evil/passwd").unwrap();
        assert!(matches!(stat_entry(&r, "c"), Err(Error::NotFound(_))));
    }
}
