//! Unpacks one layer tarball into an empty directory, safely against hostile archives.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)` from a descriptor of the target
//! directory, so the kernel treats the target as "/" for the whole walk: a symlink in the layer
//! (`evil -> /`) is followed as if chrooted and can never lead outside; `..` escapes are rejected
//! before that. The final component is always created or touched with `*at` calls that do not
//! follow symlinks, after removing whatever entry was there, so writing "through" a symlink is
//! impossible. Hard links are resolved the same way, so they can only point inside the layer.
//!
//! OCI whiteouts become overlayfs ones: `.wh.name` → a 0/0 character device `name`,
//! `.wh..wh..opq` → `trusted.overlay.opaque=y` on the directory.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, makedev, mkdirat, mknodat, utimensat, FchmodatFlags, Mode,
    SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;
use xattr::FileExt as _;

use crate::error::{ctx, Error};

/// Copy buffer: big enough that a layer streams in few syscalls, small enough to never matter.
pub(crate) const BUF_SIZE: usize = 1 << 20;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Other `.wh..wh.` names are aufs bookkeeping with no meaning on overlayfs.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// overlayfs reads these as instructions (redirects, metacopy, opacity): only we may set them.
const RESERVED_XATTR_PREFIX: &str = "trusted.overlay.";

/// What an unpack found.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Unpacked {
    /// Sum of regular file sizes and symlink target lengths: the layer's size as Docker
    /// reports it (the apparent size of the unpacked diff, hard links once).
    pub(crate) size: u64,
}

/// Ownership, permissions, time and xattrs of one entry.
struct Meta {
    mode: Mode,
    uid: u32,
    gid: u32,
    /// Modification time (also used as the access time), to the nanosecond when a PAX
    /// header gives one, as Docker's unpacker keeps it.
    mtime: TimeSpec,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidArchive(msg.into())
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Truncated or corrupt input is the archive's fault; anything else (a full disk behind the tee)
/// is a real I/O error and must not be reported as a bad archive.
fn read_err(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::Other => {
            bad(e.to_string())
        }
        _ => Error::Io(e),
    }
}

fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open call in this module and nothing else
    // holds it, so the OwnedFd becomes its sole owner and closes it exactly once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Lexically normalises an archive path into components: strips a leading '/', drops "." and
/// empty parts, lets ".." cancel a previous part and rejects a ".." that would leave the root.
pub(crate) fn clean_path(raw: &[u8]) -> Result<Vec<OsString>, Error> {
    let mut out: Vec<OsString> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(bad(format!("path escapes the layer: {}", lossy(raw))));
                }
            }
            _ => {
                if c.contains(&0) {
                    return Err(bad(format!("NUL in path: {}", lossy(raw))));
                }
                out.push(OsString::from_vec(c.to_vec()));
            }
        }
    }
    Ok(out)
}

fn join(comps: &[OsString]) -> OsString {
    if comps.is_empty() {
        return OsString::from(".");
    }
    let mut s = OsString::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            s.push("/");
        }
        s.push(c);
    }
    s
}

/// Opens `comps` below `root` with `root` acting as "/" for every symlink on the way.
fn resolve(root: &OwnedFd, comps: &[OsString], flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(
        ResolveFlag::RESOLVE_IN_ROOT
            | ResolveFlag::RESOLVE_NO_MAGICLINKS
            | ResolveFlag::RESOLVE_NO_XDEV,
    );
    openat2(root.as_raw_fd(), join(comps).as_os_str(), how).map(own)
}

const DIR_FLAGS: OFlag = OFlag::O_DIRECTORY.union(OFlag::O_RDONLY);

/// Opens the directory `comps`, creating missing directories (tars often omit parents).
fn open_dir(root: &OwnedFd, comps: &[OsString]) -> Result<OwnedFd, Error> {
    let what = || join(comps).to_string_lossy().into_owned();
    match resolve(root, comps, DIR_FLAGS) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(ctx(e, what())),
    }
    let mut dir = resolve(root, &[], DIR_FLAGS).map_err(|e| ctx(e, "layer root"))?;
    for i in 0..comps.len() {
        dir = match resolve(root, &comps[..=i], DIR_FLAGS) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match mkdirat(
                    Some(dir.as_raw_fd()),
                    comps[i].as_os_str(),
                    Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(ctx(e, what())),
                }
                // Still missing: the name is a dangling symlink (or similar). Refuse rather than
                // guess where it should lead.
                resolve(root, &comps[..=i], DIR_FLAGS)
                    .map_err(|e| bad(format!("cannot create directory {}: {e}", what())))?
            }
            Err(e @ (Errno::ENOTDIR | Errno::ELOOP)) => {
                return Err(bad(format!("cannot create directory {}: {e}", what())))
            }
            Err(e) => return Err(ctx(e, what())),
        };
    }
    Ok(dir)
}

/// Clears the way for a new entry `name` in `dir`. Returns true if an existing directory was
/// kept because the new entry is a directory too (tar semantics: directories merge).
fn clear_entry(dir: &OwnedFd, name: &OsStr, keep_dir: bool) -> Result<bool, Error> {
    let st = match fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(ctx(e, name.to_string_lossy())),
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        if keep_dir {
            return Ok(true);
        }
        // remove_dir_all opens each level with O_NOFOLLOW, and the /proc path pins the parent
        // we already resolved safely, so this stays inside the layer.
        let mut p = OsString::from(format!("/proc/self/fd/{}/", dir.as_raw_fd()));
        p.push(name);
        std::fs::remove_dir_all(Path::new(&p)).map_err(|e| ctx(e, name.to_string_lossy()))?;
    } else {
        unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| ctx(e, name.to_string_lossy()))?;
    }
    Ok(false)
}

fn set_xattrs(f: &File, meta: &Meta) -> Result<(), Error> {
    for (k, v) in &meta.xattrs {
        match f.set_xattr(k, v) {
            Ok(()) => {}
            // Some filesystems lack a namespace (e.g. no security.* labels); the layer is still usable.
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {
                tracing::warn!(xattr = %k, "xattr not supported here; dropped");
            }
            Err(e) => return Err(ctx(e, format!("setxattr {k}"))),
        }
    }
    Ok(())
}

/// Owner before mode: chown clears set-id bits, so the mode must come after it.
fn apply_fd(f: &File, meta: &Meta, what: &str) -> Result<(), Error> {
    let fd = f.as_raw_fd();
    fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(|e| ctx(e, what))?;
    fchmod(fd, meta.mode).map_err(|e| ctx(e, what))?;
    set_xattrs(f, meta)
}

fn set_time_at(dir: &OwnedFd, name: &OsStr, t: TimeSpec) -> Result<(), Error> {
    utimensat(
        Some(dir.as_raw_fd()),
        name,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| ctx(e, name.to_string_lossy()))
}

fn chown_at(dir: &OwnedFd, name: &OsStr, meta: &Meta) -> Result<(), Error> {
    fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| ctx(e, name.to_string_lossy()))
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, Error> {
    let h = entry.header();
    let old = h.as_old();
    let mode =
        Mode::from_bits_truncate(num_field(h.mode().map(u64::from), &old.mode)? as u32 & 0o7777);
    let id = |v: u64| u32::try_from(v).map_err(|_| bad(format!("id {v} out of range")));
    let mut uid = id(num_field(h.uid(), &old.uid)?)?;
    let mut gid = id(num_field(h.gid(), &old.gid)?)?;
    let mut mtime = TimeSpec::new(
        i64::try_from(num_field(h.mtime(), &old.mtime)?).unwrap_or(0),
        0,
    );
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(read_err)? {
        for ext in exts {
            let ext = ext.map_err(read_err)?;
            let Ok(key) = ext.key() else { continue };
            let num = || -> Result<u32, Error> {
                let s = std::str::from_utf8(ext.value_bytes()).map_err(|_| bad("bad pax id"))?;
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| bad("bad pax id"))
                    .and_then(id)
            };
            match key {
                "uid" => uid = num()?,
                "gid" => gid = num()?,
                "mtime" => {
                    if let Some(t) = std::str::from_utf8(ext.value_bytes())
                        .ok()
                        .and_then(pax_time)
                    {
                        mtime = t;
                    }
                }
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        if !name.starts_with(RESERVED_XATTR_PREFIX) {
                            xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// A numeric header field. Go's archive/tar, which Docker unpacks layers with, reads a field
/// of only NULs or spaces as 0 (some tools leave uid, gid or mtime empty); the tar crate
/// refuses it, so that one case is let through here.
fn num_field(parsed: io::Result<u64>, raw: &[u8]) -> Result<u64, Error> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        Err(e) => Err(read_err(e)),
    }
}

/// A PAX time ("1600000000.25", "-1.5"): seconds and an optional fraction, to the nanosecond.
fn pax_time(v: &str) -> Option<TimeSpec> {
    let (secs, frac) = v.trim().split_once('.').unwrap_or((v.trim(), ""));
    let negative = secs.starts_with('-');
    let secs: i64 = secs.parse().ok()?;
    if frac.is_empty() {
        return Some(TimeSpec::new(secs, 0));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: i64 = digits.parse().ok()?;
    // "-1.5" is 1.5 s before the epoch: -2 s + 0.5 s.
    Some(if negative && nanos > 0 {
        TimeSpec::new(secs - 1, 1_000_000_000 - nanos)
    } else {
        TimeSpec::new(secs, nanos)
    })
}

/// Unpacks the tar stream in `reader` into `target`, which must be an empty directory.
/// Stops at the end-of-archive marker and leaves whatever follows in `reader`.
pub(crate) fn unpack(reader: &mut dyn Read, target: &Path) -> Result<Unpacked, Error> {
    let root = File::open(target).map_err(|e| ctx(e, target.display()))?;
    let root = OwnedFd::from(root);
    let mut archive = tar::Archive::new(crate::CappedTar::new(reader));
    let mut buf = vec![0u8; BUF_SIZE];
    let mut out = Unpacked::default();
    // Directory times are set last: creating entries inside a directory bumps its mtime.
    let mut dir_times: Vec<(Vec<OsString>, TimeSpec)> = Vec::new();

    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path_bytes().into_owned();
        let mut comps = clean_path(&raw)?;
        let kind = entry.header().entry_type();
        let meta = read_meta(&mut entry)?;

        let Some(name) = comps.pop() else {
            // The archive's own root ("./"): it describes the target directory itself.
            if kind == EntryType::Directory {
                apply_fd(&File::from(root.try_clone()?), &meta, "layer root")?;
                dir_times.push((Vec::new(), meta.mtime));
                continue;
            }
            return Err(bad(format!("entry with empty path: {}", lossy(&raw))));
        };
        let parent_comps = comps;
        let name_b = name.as_bytes();

        if name_b == OPAQUE_MARKER {
            let dir = File::from(open_dir(&root, &parent_comps)?);
            dir.set_xattr(OPAQUE_XATTR, b"y")
                .map_err(|e| ctx(e, "set opaque xattr"))?;
            continue;
        }
        if name_b.starts_with(AUFS_META_PREFIX) {
            continue;
        }
        if let Some(hidden) = name_b.strip_prefix(WHITEOUT_PREFIX) {
            let hidden = OsStr::from_bytes(hidden);
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(bad(format!("bad whiteout: {}", lossy(&raw))));
            }
            let dir = open_dir(&root, &parent_comps)?;
            clear_entry(&dir, hidden, false)?;
            mknodat(
                Some(dir.as_raw_fd()),
                hidden,
                SFlag::S_IFCHR,
                Mode::empty(),
                makedev(0, 0),
            )
            .map_err(|e| ctx(e, lossy(&raw)))?;
            chown_at(&dir, hidden, &meta)?;
            continue;
        }

        let dir = open_dir(&root, &parent_comps)?;
        let name = name.as_os_str();
        match kind {
            EntryType::Directory => {
                if !clear_entry(&dir, name, true)? {
                    mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o700))
                        .map_err(|e| ctx(e, lossy(&raw)))?;
                }
                let fd = openat(
                    Some(dir.as_raw_fd()),
                    name,
                    DIR_FLAGS | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| ctx(e, lossy(&raw)))?;
                apply_fd(&File::from(own(fd)), &meta, &lossy(&raw))?;
                let mut full = parent_comps;
                full.push(name.to_os_string());
                dir_times.push((full, meta.mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                clear_entry(&dir, name, false)?;
                let fd = openat(
                    Some(dir.as_raw_fd()),
                    name,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| ctx(e, lossy(&raw)))?;
                let mut f = File::from(own(fd));
                let mut writeback = crate::fsutil::EarlyWriteback::default();
                loop {
                    let n = entry.read(&mut buf).map_err(read_err)?;
                    if n == 0 {
                        break;
                    }
                    f.write_all(&buf[..n]).map_err(|e| ctx(e, lossy(&raw)))?;
                    writeback.wrote(&f, n);
                    out.size += n as u64;
                }
                apply_fd(&f, &meta, &lossy(&raw))?;
                futimens(f.as_raw_fd(), &meta.mtime, &meta.mtime)
                    .map_err(|e| ctx(e, lossy(&raw)))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad(format!("symlink without target: {}", lossy(&raw))))?
                    .into_owned();
                if target.is_empty() || target.contains(&0) {
                    return Err(bad(format!("bad symlink target: {}", lossy(&raw))));
                }
                clear_entry(&dir, name, false)?;
                // The target is stored verbatim: it is only ever followed inside a container
                // (or by us with RESOLVE_IN_ROOT), never by the host.
                symlinkat(OsStr::from_bytes(&target), Some(dir.as_raw_fd()), name)
                    .map_err(|e| ctx(e, lossy(&raw)))?;
                // Docker's layer size is the diff's apparent size, where a symlink counts
                // its target's length; `images` and `system df` agree only if we count it too.
                out.size += target.len() as u64;
                chown_at(&dir, name, &meta)?;
                set_time_at(&dir, name, meta.mtime)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad(format!("hard link without target: {}", lossy(&raw))))?
                    .into_owned();
                let mut tcomps = clean_path(&target)?;
                let tname = tcomps
                    .pop()
                    .ok_or_else(|| bad(format!("bad hard link target: {}", lossy(&target))))?;
                let tdir = resolve(&root, &tcomps, DIR_FLAGS).map_err(|e| {
                    bad(format!(
                        "hard link target {} not in layer: {e}",
                        lossy(&target)
                    ))
                })?;
                if tcomps == parent_comps && tname.as_os_str() == name {
                    continue; // a link to itself: nothing to do, and clearing would lose the file
                }
                clear_entry(&dir, name, false)?;
                // Flags 0: a symlink target is linked as the symlink itself, never followed.
                linkat(
                    Some(tdir.as_raw_fd()),
                    tname.as_os_str(),
                    Some(dir.as_raw_fd()),
                    name,
                    AtFlags::empty(),
                )
                .map_err(|e| {
                    bad(format!(
                        "hard link {} -> {}: {e}",
                        lossy(&raw),
                        lossy(&target)
                    ))
                })?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    _ => {
                        let h = entry.header();
                        let major = h.device_major().map_err(read_err)?.unwrap_or(0);
                        let minor = h.device_minor().map_err(read_err)?.unwrap_or(0);
                        let s = if kind == EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (s, makedev(u64::from(major), u64::from(minor)))
                    }
                };
                clear_entry(&dir, name, false)?;
                mknodat(Some(dir.as_raw_fd()), name, sflag, meta.mode, dev)
                    .map_err(|e| ctx(e, lossy(&raw)))?;
                chown_at(&dir, name, &meta)?;
                // Not a symlink (we just made it), so following is moot; chown cleared set-id bits.
                fchmodat(
                    Some(dir.as_raw_fd()),
                    name,
                    meta.mode,
                    FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| ctx(e, lossy(&raw)))?;
                set_time_at(&dir, name, meta.mtime)?;
            }
            other => {
                tracing::debug!(kind = ?other, path = %lossy(&raw), "skipping tar entry type");
            }
        }
    }

    for (comps, mtime) in dir_times.iter().rev() {
        // A directory may since have been replaced by a symlink or removed; then its time is moot.
        match resolve(&root, comps, DIR_FLAGS | OFlag::O_NOFOLLOW) {
            Ok(fd) => {
                futimens(fd.as_raw_fd(), mtime, mtime)
                    .map_err(|e| ctx(e, join(comps).to_string_lossy()))?;
            }
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => {}
            Err(e) => return Err(ctx(e, join(comps).to_string_lossy())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{require_root, TarBuf};
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    fn run(tar: &[u8], target: &Path) -> Result<Unpacked, Error> {
        let mut r: &[u8] = tar;
        unpack(&mut r, target)
    }

    /// A sandbox dir holding only `target`; afterwards nothing else may appear in it.
    fn sandbox() -> (tempfile::TempDir, std::path::PathBuf) {
        let s = tempfile::tempdir().unwrap();
        let t = s.path().join("target");
        std::fs::create_dir(&t).unwrap();
        (s, t)
    }

    fn only_target(s: &tempfile::TempDir) {
        let names: Vec<_> = std::fs::read_dir(s.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["target".to_string()],
            "something escaped the target"
        );
    }

    #[test]
    fn clean_path_rules() {
        let c = |s: &str| clean_path(s.as_bytes()).map(|v| join(&v).to_string_lossy().into_owned());
        assert_eq!(c("./a/b/").unwrap(), "a/b");
        assert_eq!(c("/abs/x").unwrap(), "abs/x");
        assert_eq!(c("a/../b").unwrap(), "b");
        assert_eq!(c("./").unwrap(), ".");
        assert!(c("../escape").is_err());
        assert!(c("a/../../b").is_err());
    }

    #[test]
    fn unpacks_every_kind_with_metadata() {
        if !require_root("unpacks_every_kind_with_metadata") {
            return;
        }
        let mut t = TarBuf::new();
        t.dir("./")
            .raw(EntryType::Directory, "etc/", None, b"", 0o750, 0)
            .raw(EntryType::Regular, "etc/conf", None, b"hello", 0o4755, 1234)
            .symlink("etc/link", "conf")
            .hardlink("etc/hard", "etc/conf")
            .raw(EntryType::Fifo, "run/fifo", None, b"", 0o600, 0);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::Char);
        h.set_path("dev/null").unwrap();
        h.set_mode(0o666);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        let mut t2 = t;
        t2.pax(&[
            ("SCHILY.xattr.user.note", b"v"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/x"),
            ("uid", b"70000"),
        ])
        .file("bin/tool", b"#!x");
        let mut bytes = t2.finish();
        // Splice the device entry in before the end-of-archive blocks.
        let end = bytes.len() - 1024;
        let mut dev = h.as_bytes().to_vec();
        dev.extend_from_slice(&bytes[end..]);
        bytes.truncate(end);
        bytes.extend_from_slice(&dev);

        let (_s, target) = sandbox();
        let got = run(&bytes, &target).unwrap();
        // conf, the `conf` symlink's target, bin/tool; the hard link adds nothing.
        assert_eq!(got.size, 5 + 4 + 3);

        let conf = std::fs::symlink_metadata(target.join("etc/conf")).unwrap();
        assert_eq!(conf.uid(), 1234);
        assert_eq!(
            conf.permissions().mode() & 0o7777,
            0o4755,
            "set-id bits survive chown"
        );
        assert_eq!(conf.mtime(), 1_600_000_000);
        assert_eq!(conf.nlink(), 2);
        assert_eq!(std::fs::read(target.join("etc/hard")).unwrap(), b"hello");
        assert_eq!(
            std::fs::read_link(target.join("etc/link")).unwrap(),
            Path::new("conf")
        );
        let etc = std::fs::metadata(target.join("etc")).unwrap();
        assert_eq!(etc.permissions().mode() & 0o777, 0o750);
        assert_eq!(
            etc.mtime(),
            1_600_000_000,
            "dir mtime set after its children"
        );
        assert!(std::fs::symlink_metadata(target.join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        let dev = std::fs::symlink_metadata(target.join("dev/null")).unwrap();
        assert!(dev.file_type().is_char_device());
        assert_eq!(dev.rdev(), nix::sys::stat::makedev(1, 3));
        let tool = std::fs::symlink_metadata(target.join("bin/tool")).unwrap();
        assert_eq!(tool.uid(), 70000, "pax uid overrides the header");
        assert_eq!(
            xattr::get(target.join("bin/tool"), "user.note")
                .unwrap()
                .as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(
            xattr::get(target.join("bin/tool"), "trusted.overlay.redirect").unwrap(),
            None
        );
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        if !require_root("whiteouts_become_overlay_whiteouts") {
            return;
        }
        let mut t = TarBuf::new();
        t.file("a/.wh.gone", b"")
            .file("b/.wh..wh..opq", b"")
            .file("b/kept", b"k")
            .file(".wh..wh.plnk", b"");
        let (_s, target) = sandbox();
        run(&t.finish(), &target).unwrap();
        let wh = std::fs::symlink_metadata(target.join("a/gone")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!target.join("a/.wh.gone").exists());
        assert_eq!(
            xattr::get(target.join("b"), OPAQUE_XATTR)
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        assert!(target.join("b/kept").exists());
        assert!(!target.join(".wh..wh.plnk").exists());
    }

    #[test]
    fn dotdot_escape_is_rejected() {
        let (s, target) = sandbox();
        let mut t = TarBuf::new();
        t.file("../escape", b"x");
        assert!(matches!(
            run(&t.finish(), &target),
            Err(Error::InvalidArchive(_))
        ));
        let mut t = TarBuf::new();
        t.file("a/../../escape2", b"x");
        assert!(matches!(
            run(&t.finish(), &target),
            Err(Error::InvalidArchive(_))
        ));
        only_target(&s);
    }

    #[test]
    fn absolute_paths_land_inside() {
        if !require_root("absolute_paths_land_inside") {
            return;
        }
        let (s, target) = sandbox();
        let abs = format!("{}/abs-escape", s.path().display());
        let mut t = TarBuf::new();
        t.file("/abs", b"x").file(&abs, b"y");
        run(&t.finish(), &target).unwrap();
        assert_eq!(std::fs::read(target.join("abs")).unwrap(), b"x");
        assert!(target.join(abs.trim_start_matches('/')).exists());
        only_target(&s);
    }

    #[test]
    fn symlinks_never_lead_outside() {
        if !require_root("symlinks_never_lead_outside") {
            return;
        }
        let (s, target) = sandbox();
        let passwd_before = std::fs::read("/etc/passwd").unwrap();
        let outside = s.path().join("victim");
        let mut t = TarBuf::new();
        t.symlink("evil", "/")
            .file("evil/etc/passwd", b"pwned")
            .symlink("up", "../../../../..")
            .file("up/x", b"x")
            // A file entry over a symlink replaces the link rather than writing through it.
            .symlink("f", "/etc/passwd")
            .file("f", b"pwned")
            // A directory entry over a symlink to a directory outside.
            .symlink("d", "/etc")
            .dir("d/");
        run(&t.finish(), &target).unwrap();
        assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);
        assert!(!outside.exists());
        only_target(&s);
        assert_eq!(std::fs::read(target.join("etc/passwd")).unwrap(), b"pwned");
        assert!(target.join("x").exists());
        assert_eq!(std::fs::read(target.join("f")).unwrap(), b"pwned");
        assert!(std::fs::symlink_metadata(target.join("d"))
            .unwrap()
            .is_dir());
        // A symlink to an absolute path that does not exist inside the layer is a dead end:
        // the entry below it is refused rather than created anywhere.
        let mut t = TarBuf::new();
        t.symlink("sb", s.path().to_str().unwrap())
            .file("sb/victim", b"pwned");
        let (s2, target2) = sandbox();
        assert!(matches!(
            run(&t.finish(), &target2),
            Err(Error::InvalidArchive(_))
        ));
        assert!(!outside.exists());
        only_target(&s2);
        // The symlink itself is kept verbatim for use inside the container.
        assert_eq!(
            std::fs::read_link(target.join("evil")).unwrap(),
            Path::new("/")
        );
    }

    #[test]
    fn hardlinks_never_reach_outside() {
        if !require_root("hardlinks_never_reach_outside") {
            return;
        }
        let shadow_links = std::fs::metadata("/etc/shadow").map(|m| m.nlink()).ok();
        for (i, tar) in [
            {
                let mut t = TarBuf::new();
                t.hardlink("h", "/etc/shadow");
                t.finish()
            },
            {
                let mut t = TarBuf::new();
                t.symlink("e", "/etc").hardlink("h", "e/shadow");
                t.finish()
            },
            {
                let mut t = TarBuf::new();
                t.hardlink("h", "../../../etc/shadow");
                t.finish()
            },
        ]
        .iter()
        .enumerate()
        {
            let (s, target) = sandbox();
            let r = run(tar, &target);
            assert!(
                matches!(r, Err(Error::InvalidArchive(_))),
                "case {i}: {r:?}"
            );
            assert!(!target.join("h").exists(), "case {i}");
            only_target(&s);
        }
        assert_eq!(
            std::fs::metadata("/etc/shadow").map(|m| m.nlink()).ok(),
            shadow_links
        );
        // A link to a symlink links the symlink itself, not what it points at.
        let (s, target) = sandbox();
        let mut t = TarBuf::new();
        t.symlink("etc/s", "/etc/shadow").hardlink("h", "etc/s");
        run(&t.finish(), &target).unwrap();
        assert!(std::fs::symlink_metadata(target.join("h"))
            .unwrap()
            .file_type()
            .is_symlink());
        only_target(&s);
    }

    #[test]
    fn whiteouts_of_dot_and_dotdot_are_refused() {
        for name in ["a/.wh..", "a/.wh...", ".wh...", ".wh."] {
            let (s, target) = sandbox();
            let mut t = TarBuf::new();
            t.file("a/keep", b"k").file(name, b"");
            let r = run(&t.finish(), &target);
            assert!(matches!(r, Err(Error::InvalidArchive(_))), "{name}: {r:?}");
            only_target(&s);
            assert_eq!(
                std::fs::read(target.join("a/keep")).unwrap(),
                b"k",
                "{name}"
            );
        }
    }

    #[test]
    fn whiteouts_and_markers_through_symlinks_stay_inside() {
        if !require_root("whiteouts_and_markers_through_symlinks_stay_inside") {
            return;
        }
        let (s, target) = sandbox();
        std::fs::write(s.path().join("victim"), b"v").unwrap();
        let mut t = TarBuf::new();
        // `up` leads to the sandbox on the host, but resolves to the layer root here.
        t.symlink("up", "..")
            .file("up/.wh.victim", b"")
            .symlink("abs", s.path().to_str().unwrap())
            .dir("real/")
            .symlink("r", "/real")
            .file("r/.wh..wh..opq", b"");
        let r = run(&t.finish(), &target);
        assert_eq!(std::fs::read(s.path().join("victim")).unwrap(), b"v");
        assert_eq!(xattr::get(s.path(), OPAQUE_XATTR).unwrap(), None);
        r.unwrap();
        assert!(std::fs::symlink_metadata(target.join("victim"))
            .unwrap()
            .file_type()
            .is_char_device());
        assert_eq!(
            xattr::get(target.join("real"), OPAQUE_XATTR)
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        std::fs::remove_file(s.path().join("victim")).unwrap();
        only_target(&s);
    }

    #[test]
    fn file_capabilities_survive_chown_and_times_keep_nanoseconds() {
        if !require_root("file_capabilities_survive_chown_and_times_keep_nanoseconds") {
            return;
        }
        // vfs_cap_data revision 2: effective, permitted = CAP_NET_BIND_SERVICE.
        let mut cap = Vec::new();
        for word in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
            cap.extend_from_slice(&word.to_le_bytes());
        }
        let mut t = TarBuf::new();
        t.pax(&[
            ("SCHILY.xattr.security.capability", &cap),
            ("mtime", b"1600000000.123456789"),
        ])
        .raw(EntryType::Regular, "bin/ping", None, b"elf", 0o4755, 1000)
        .pax(&[("mtime", b"1500000000.5")])
        .raw(EntryType::Directory, "bin/", None, b"", 0o755, 0);
        let (_s, target) = sandbox();
        run(&t.finish(), &target).unwrap();
        let ping = target.join("bin/ping");
        assert_eq!(xattr::get(&ping, "security.capability").unwrap(), Some(cap));
        let m = std::fs::symlink_metadata(&ping).unwrap();
        assert_eq!((m.uid(), m.permissions().mode() & 0o7777), (1000, 0o4755));
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 123_456_789));
        let d = std::fs::metadata(target.join("bin")).unwrap();
        assert_eq!((d.mtime(), d.mtime_nsec()), (1_500_000_000, 500_000_000));
    }

    #[test]
    fn empty_numeric_fields_read_as_zero_like_go() {
        let mut h = tar::Header::new_ustar();
        h.set_path("f").unwrap();
        h.set_size(1);
        h.set_mode(0o644);
        h.as_old_mut().uid.fill(0);
        h.as_old_mut().gid.fill(b' ');
        h.as_old_mut().mtime.fill(0);
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend_from_slice(&[b'x'; 512]);
        bytes.extend_from_slice(&[0; 1024]);
        let (_s, target) = sandbox();
        run(&bytes, &target).unwrap();
        assert_eq!(std::fs::read(target.join("f")).unwrap(), b"x");
        // Garbage is still an error.
        h.as_old_mut().uid.copy_from_slice(b"12x4567\0");
        h.set_cksum();
        bytes[..512].copy_from_slice(h.as_bytes());
        let (_s, target) = sandbox();
        assert!(matches!(
            run(&bytes, &target),
            Err(Error::InvalidArchive(_))
        ));
    }

    #[test]
    fn pax_times_parse() {
        let t = |v: &str| pax_time(v).map(|t| (t.tv_sec(), t.tv_nsec()));
        assert_eq!(t("12"), Some((12, 0)));
        assert_eq!(t("12.5"), Some((12, 500_000_000)));
        assert_eq!(t("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(t("1.0000000019"), Some((1, 1)));
        assert_eq!(t("x"), None);
        assert_eq!(t("1.x"), None);
    }

    #[test]
    fn later_entries_replace_links_and_kinds_instead_of_writing_through() {
        if !require_root("later_entries_replace_links_and_kinds_instead_of_writing_through") {
            return;
        }
        let mut t = TarBuf::new();
        t.file("orig", b"original")
            .hardlink("h", "orig")
            .file("h", b"replaced")
            .file("was-file/", b"")
            .dir("d/")
            .file("d/inner", b"x")
            .file("d", b"now a file")
            .file("f", b"x")
            .dir("f/")
            .file("f/inner", b"y");
        let (s, target) = sandbox();
        run(&t.finish(), &target).unwrap();
        assert_eq!(std::fs::read(target.join("orig")).unwrap(), b"original");
        assert_eq!(std::fs::read(target.join("h")).unwrap(), b"replaced");
        assert_eq!(std::fs::metadata(target.join("orig")).unwrap().nlink(), 1);
        assert_eq!(std::fs::read(target.join("d")).unwrap(), b"now a file");
        assert_eq!(std::fs::read(target.join("f/inner")).unwrap(), b"y");
        only_target(&s);
    }

    #[test]
    fn truncated_archive_is_invalid() {
        let mut t = TarBuf::new();
        t.file("big", &[7u8; 4096]);
        let bytes = t.finish();
        let (_s, target) = sandbox();
        let r = run(&bytes[..1500], &target);
        assert!(matches!(r, Err(Error::InvalidArchive(_))), "{r:?}");
    }

    #[test]
    fn layered_whiteouts_work_on_overlayfs() {
        if !require_root("layered_whiteouts_work_on_overlayfs") {
            return;
        }
        use nix::mount::{mount, umount, MsFlags};
        let s = tempfile::tempdir().unwrap();
        let (l1, l2, up, wk, mnt) = ["l1", "l2", "up", "wk", "mnt"]
            .map(|n| {
                let p = s.path().join(n);
                std::fs::create_dir(&p).unwrap();
                p
            })
            .into();
        let mut t = TarBuf::new();
        t.file("keep", b"1").file("gone", b"1").file("d/old", b"1");
        run(&t.finish(), &l1).unwrap();
        let mut t = TarBuf::new();
        t.file(".wh.gone", b"")
            .file("d/.wh..wh..opq", b"")
            .file("d/new", b"2");
        run(&t.finish(), &l2).unwrap();
        let opts = format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            l2.display(),
            l1.display(),
            up.display(),
            wk.display()
        );
        mount(
            Some("overlay"),
            &mnt,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .unwrap();
        let seen = (
            mnt.join("keep").exists(),
            mnt.join("gone").exists(),
            mnt.join("d/old").exists(),
            mnt.join("d/new").exists(),
        );
        umount(&mnt).unwrap();
        assert_eq!(seen, (true, false, false, true));
    }
}
