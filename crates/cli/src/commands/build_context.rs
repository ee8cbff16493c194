//! The build context as the docker CLI 20.10 prepares it (`cli/command/image/build.go` and
//! `cli/command/image/build/context.go`): where the context and the Dockerfile are, which
//! files `.dockerignore` leaves in, and the tar it sends (uid/gid 0, modes with type bits,
//! hard links as link entries, a Dockerfile from outside the context or stdin added as
//! `.dockerfile.<random>` and named in `.dockerignore`).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use berth_context::dockerignore::read_patterns;
use berth_context::path::clean;
use berth_context::{walk, Entry, EntryKind, Ignore};
use nix::unistd::{Gid, Group, Uid, User};

use crate::commands::create::io_reason;

/// A file of the context that is not on disk as sent: the Dockerfile read from stdin or
/// from outside the context, or the rewritten `.dockerignore`.
#[derive(Debug, Clone)]
pub struct VirtualFile {
    pub name: String,
    pub data: Vec<u8>,
    /// The tar mode as docker writes it (0600 for its own entries, no type bits).
    pub mode: u32,
    pub uid: u32,
}

/// A context directory, walked.
#[derive(Debug)]
pub struct DirContext {
    pub root: PathBuf,
    /// The Dockerfile's path as the daemon will look it up ('/'-separated).
    pub dockerfile: String,
    pub entries: Vec<(Entry, PathBuf)>,
    /// New content for an entry of `entries` (the `.dockerignore`).
    pub replace: Option<VirtualFile>,
    /// Files appended after the walked ones.
    pub append: Vec<VirtualFile>,
}

/// What `berth build` sends.
pub enum Prepared {
    Dir(DirContext),
    /// A tar (maybe compressed) from stdin, passed on as is; `head` was read to sniff it.
    Stdin {
        head: Vec<u8>,
        dockerfile: String,
    },
}

/// Docker's `unable to prepare context: …` failures and the like: the message, exit 1.
pub type PrepError = String;

/// Prepares the context named on the command line (`-` = stdin) with `-f` (`-` = stdin).
pub fn prepare(context: &str, file: Option<&str>) -> Result<Prepared, PrepError> {
    let dockerfile_from_stdin = file == Some("-");
    if context == "-" {
        if dockerfile_from_stdin {
            return Err(
                "invalid argument: can't use stdin for both build context and dockerfile".into(),
            );
        }
        return from_stdin(file);
    }
    if fs::metadata(context).is_err() {
        if is_remote(context) {
            return Err(format!(
                "unable to prepare context: remote build contexts ({context}) are not supported by berth"
            ));
        }
        return Err(format!(
            "unable to prepare context: path \"{context}\" not found"
        ));
    }
    let root =
        resolve_context_dir(context).map_err(|e| format!("unable to prepare context: {e}"))?;
    let abs_dockerfile = match file {
        Some(f) if f != "-" => Some(absolute(Path::new(f))),
        _ => None,
    };
    let rel = if dockerfile_from_stdin {
        "-".to_string()
    } else {
        dockerfile_rel_path(&root, abs_dockerfile.as_deref())
            .map_err(|e| format!("unable to prepare context: {e}"))?
    };
    // A Dockerfile outside the context (or on stdin) travels inside the tar under a random name.
    let outside: Option<Vec<u8>> = if dockerfile_from_stdin {
        let mut data = Vec::new();
        io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| format!("unable to read Dockerfile from stdin: {e}"))?;
        Some(data)
    } else if rel.starts_with("../") {
        let f = file.unwrap_or_default();
        Some(
            fs::read(f)
                .map_err(|e| format!("unable to open Dockerfile: open {f}: {}", io_reason(&e)))?,
        )
    } else {
        None
    };
    let ignore_text = read_ignore_file(&root, abs_dockerfile.as_deref(), &rel)?;
    let mut patterns = read_patterns(&ignore_text);
    let check = |p: &[String]| {
        Ignore::from_patterns(p).map_err(|e| format!("error checking context: '{e}'."))
    };
    // The Dockerfile and .dockerignore are always sent (the daemon drops them afterwards
    // when they are excluded): docker's TrimBuildFilesFromExcludes.
    if check(&patterns)?.matches(".dockerignore") {
        patterns.push("!.dockerignore".into());
    }
    if check(&patterns)?.matches(&rel) && !dockerfile_from_stdin {
        patterns.push(format!("!{rel}"));
    }
    let ignore = check(&patterns)?;
    let entries = walk(&root, &ignore).map_err(|e| format!("error checking context: '{e}'."))?;
    let mut ctx = DirContext {
        root,
        dockerfile: rel,
        entries,
        replace: None,
        append: Vec::new(),
    };
    if let Some(data) = outside {
        add_dockerfile(&mut ctx, data)?;
    }
    Ok(Prepared::Dir(ctx))
}

/// `git@…`, `github.com/…`, `http(s)://…`, `git://…`: contexts the docker CLI fetches.
fn is_remote(c: &str) -> bool {
    ["http://", "https://", "git://", "github.com/", "git@"]
        .iter()
        .any(|p| c.starts_with(p))
}

/// docker's AddDockerfileToBuildContext: `.dockerfile.<20 hex>` holds the Dockerfile and is
/// appended to `.dockerignore` (created when missing).
fn add_dockerfile(ctx: &mut DirContext, data: Vec<u8>) -> Result<(), PrepError> {
    let name = format!(".dockerfile.{}", random_hex(20));
    let existing = ctx
        .entries
        .iter()
        .find(|(e, _)| e.path == ".dockerignore" && e.kind == EntryKind::File);
    let mut ignore = match existing {
        Some((_, host)) => fs::read(host).map_err(|e| format!("{e}"))?,
        None => b".dockerignore".to_vec(),
    };
    ignore.extend_from_slice(format!("\n{name}\n").as_bytes());
    let file = |name: &str, data: Vec<u8>| VirtualFile {
        name: name.to_string(),
        data,
        mode: 0o600,
        uid: 0,
    };
    ctx.append.push(file(&name, data));
    if existing.is_some() {
        ctx.replace = Some(file(".dockerignore", ignore));
    } else {
        ctx.append.push(file(".dockerignore", ignore));
    }
    ctx.dockerfile = name;
    Ok(())
}

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n.div_ceil(2)];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf = t.to_le_bytes()[..buf.len().min(16)].to_vec();
    }
    let mut s: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(n);
    s
}

/// Context `-`: a tar (plain or compressed) is sent as it is; anything else is a Dockerfile,
/// sent as the only file of a context.
fn from_stdin(file: Option<&str>) -> Result<Prepared, PrepError> {
    let mut head = Vec::with_capacity(512);
    io::stdin().take(512).read_to_end(&mut head).map_err(|e| {
        format!("unable to prepare context: failed to peek context header from STDIN: {e}")
    })?;
    if is_archive(&head) {
        return Ok(Prepared::Stdin {
            head,
            dockerfile: file.unwrap_or("Dockerfile").to_string(),
        });
    }
    let mut data = head;
    io::stdin()
        .read_to_end(&mut data)
        .map_err(|e| format!("unable to prepare context: {e}"))?;
    Ok(Prepared::Dir(DirContext {
        root: PathBuf::new(),
        dockerfile: "Dockerfile".into(),
        entries: Vec::new(),
        replace: None,
        // Written to a temporary directory (0644 under the usual umask) and tarred as is.
        append: vec![VirtualFile {
            name: "Dockerfile".into(),
            data,
            mode: 0o100644,
            // SAFETY: getuid cannot fail.
            uid: unsafe { libc::getuid() },
        }],
    }))
}

/// docker's `IsArchive`: a compression magic, or a block that reads as a tar header.
pub fn is_archive(head: &[u8]) -> bool {
    const MAGICS: [&[u8]; 4] = [
        &[0x1f, 0x8b, 0x08],
        b"BZh",
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    if MAGICS.iter().any(|m| head.starts_with(m)) {
        return true;
    }
    if head.len() < 512 || head.iter().all(|b| *b == 0) {
        return false;
    }
    // The checksum field holds the sum of the header bytes with itself read as spaces.
    let field = &head[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let Ok(want) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == want
}

/// Go's `filepath.Abs`: joined to the working directory and cleaned (no symlinks resolved).
pub fn absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    PathBuf::from(clean(&joined.to_string_lossy()))
}

/// Go's `filepath.EvalSymlinks`, with its error: `lstat <first missing prefix>: <reason>`.
fn eval_symlinks(p: &Path) -> Result<PathBuf, String> {
    let mut prefix = PathBuf::new();
    for c in p.components() {
        prefix.push(c.as_os_str());
        if matches!(c, Component::RootDir) {
            continue;
        }
        if let Err(e) = fs::symlink_metadata(&prefix) {
            return Err(format!("lstat {}: {}", prefix.display(), io_reason(&e)));
        }
    }
    fs::canonicalize(p).map_err(|e| format!("lstat {}: {}", p.display(), io_reason(&e)))
}

/// docker's ResolveAndValidateContextPath.
fn resolve_context_dir(context: &str) -> Result<PathBuf, String> {
    let abs = absolute(Path::new(context));
    let real = eval_symlinks(&abs)
        .map_err(|e| format!("unable to evaluate symlinks in context path: {e}"))?;
    let md = fs::metadata(&real).map_err(|e| {
        format!(
            "unable to stat context directory \"{}\": {}",
            real.display(),
            io_reason(&e)
        )
    })?;
    if !md.is_dir() {
        return Err(format!("context must be a directory: {}", real.display()));
    }
    Ok(real)
}

/// docker's getDockerfileRelPath: the Dockerfile relative to the context ("../x" when
/// outside it); default `Dockerfile`, else `dockerfile`.
fn dockerfile_rel_path(root: &Path, given: Option<&Path>) -> Result<String, String> {
    let mut abs = match given {
        Some(p) => p.to_path_buf(),
        None => {
            let d = root.join("Dockerfile");
            let alt = root.join("dockerfile");
            if fs::symlink_metadata(&d).is_err() && fs::symlink_metadata(&alt).is_ok() {
                alt
            } else {
                d
            }
        }
    };
    if !abs.is_absolute() {
        abs = root.join(abs);
    }
    let real = eval_symlinks(&abs)
        .map_err(|e| format!("unable to evaluate symlinks in Dockerfile path: {e}"))?;
    if let Err(e) = fs::symlink_metadata(&real) {
        return Err(if e.kind() == io::ErrorKind::NotFound {
            format!("Cannot locate Dockerfile: \"{}\"", real.display())
        } else {
            format!("unable to stat Dockerfile: {e}")
        });
    }
    Ok(relative_path(root, &real))
}

/// Go's `filepath.Rel` for two clean absolute paths.
fn relative_path(base: &Path, target: &Path) -> String {
    let b: Vec<_> = base.components().collect();
    let t: Vec<_> = target.components().collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_string(); b.len() - common];
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// The `.dockerignore` text: berth also honours `<Dockerfile>.dockerignore` beside the
/// Dockerfile (BuildKit's rule), which wins over the context's own.
fn read_ignore_file(
    root: &Path,
    abs_dockerfile: Option<&Path>,
    rel: &str,
) -> Result<String, PrepError> {
    let beside = match abs_dockerfile {
        Some(p) => Some(PathBuf::from(format!("{}.dockerignore", p.display()))),
        None if rel != "-" => Some(root.join(format!("{rel}.dockerignore"))),
        None => None,
    };
    for path in beside.into_iter().chain([root.join(".dockerignore")]) {
        match fs::read(&path) {
            Ok(b) => return Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("open {}: {}", path.display(), io_reason(&e))),
        }
    }
    Ok(String::new())
}

/// Writes the context tar as the docker CLI does; returns nothing but I/O errors.
pub fn write_tar<W: Write>(out: W, ctx: &DirContext) -> io::Result<W> {
    let mut b = tar::Builder::new(out);
    let mut names = Names::default();
    for (e, host) in &ctx.entries {
        let md = fs::symlink_metadata(host)?;
        let mut h = TarHeader {
            name: berth_context::tarsum::tar_name(e),
            typeflag: berth_context::tarsum::typeflag(e),
            mode: e.mode,
            uid: 0,
            gid: 0,
            uname: names.user(md.uid()),
            gname: names.group(md.gid()),
            mtime: md.mtime(),
            size: 0,
            linkname: e.linkname.clone(),
            xattrs: e.xattrs.clone(),
        };
        if let Some(r) = ctx.replace.as_ref().filter(|r| r.name == e.path) {
            // New content: a regular file even where the walk found a hard link.
            (h.typeflag, h.linkname) = (b'0', String::new());
            h.size = r.data.len() as u64;
            append(&mut b, &h, &r.data[..])?;
            continue;
        }
        if e.kind == EntryKind::File && !e.is_hard_link() {
            let f = fs::File::open(host)?;
            h.size = e.size;
            // A file that grew meanwhile is cut at the size in its header, as Go's writer does.
            append(&mut b, &h, f.take(e.size))?;
        } else {
            append(&mut b, &h, io::empty())?;
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for x in &ctx.append {
        let h = TarHeader {
            name: x.name.clone(),
            typeflag: b'0',
            mode: x.mode,
            uid: x.uid,
            gid: 0,
            uname: if x.uid == 0 {
                String::new()
            } else {
                names.user(x.uid)
            },
            gname: String::new(),
            mtime: now,
            size: x.data.len() as u64,
            linkname: String::new(),
            xattrs: Vec::new(),
        };
        append(&mut b, &h, &x.data[..])?;
    }
    b.into_inner()
}

struct TarHeader {
    name: String,
    typeflag: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    uname: String,
    gname: String,
    mtime: i64,
    size: u64,
    linkname: String,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Go's splitUSTARPath: a long ASCII name split at a '/' into prefix (≤155) and name (≤100).
fn split_ustar(name: &str) -> Option<(&str, &str)> {
    let len = name.len();
    if len <= 100 || !name.is_ascii() {
        return None;
    }
    let mut cut = len.min(156);
    if cut == len && name.ends_with('/') {
        cut -= 1;
    }
    let i = name[..cut].rfind('/')?;
    let (prefix, suffix) = (&name[..i], &name[i + 1..]);
    (i > 0 && !suffix.is_empty() && suffix.len() <= 100 && prefix.len() <= 155)
        .then_some((prefix, suffix))
}

/// Appends one entry (PAX records for what USTAR cannot hold, as Go's PAX writer).
fn append<W: Write>(b: &mut tar::Builder<W>, h: &TarHeader, data: impl Read) -> io::Result<()> {
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    let mut header = tar::Header::new_ustar();
    {
        let ustar = header.as_ustar_mut().expect("ustar header");
        if h.name.len() <= 100 && h.name.is_ascii() {
            ustar.name[..h.name.len()].copy_from_slice(h.name.as_bytes());
        } else if let Some((prefix, suffix)) = split_ustar(&h.name) {
            ustar.prefix[..prefix.len()].copy_from_slice(prefix.as_bytes());
            ustar.name[..suffix.len()].copy_from_slice(suffix.as_bytes());
        } else {
            pax.push(("path".into(), h.name.as_bytes().to_vec()));
            let cut = floor_char_boundary(&h.name, 100);
            ustar.name[..cut].copy_from_slice(&h.name.as_bytes()[..cut]);
        }
        if h.linkname.len() <= 100 && h.linkname.is_ascii() {
            ustar.linkname[..h.linkname.len()].copy_from_slice(h.linkname.as_bytes());
        } else {
            pax.push(("linkpath".into(), h.linkname.as_bytes().to_vec()));
        }
    }
    header.set_entry_type(tar::EntryType::new(h.typeflag));
    header.set_mode(h.mode);
    header.set_uid(u64::from(h.uid));
    header.set_gid(u64::from(h.gid));
    header.set_mtime(h.mtime.max(0) as u64);
    header.set_size(h.size);
    header.set_device_major(0)?;
    header.set_device_minor(0)?;
    if h.uname.len() <= 32 {
        header.set_username(&h.uname)?;
    }
    if h.gname.len() <= 32 {
        header.set_groupname(&h.gname)?;
    }
    for (k, v) in &h.xattrs {
        pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
    }
    if !pax.is_empty() {
        b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    header.set_cksum();
    b.append(&header, data)
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut i = max.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// User and group names by ID (Go's FileInfoHeader looks them up for the file's real owner).
#[derive(Default)]
struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    /// "" when the host has no such user, as Go's lookup failing.
    fn user(&mut self, uid: u32) -> String {
        self.users
            .entry(uid)
            .or_insert_with(|| match User::from_uid(Uid::from_raw(uid)) {
                Ok(Some(u)) => u.name,
                _ => String::new(),
            })
            .clone()
    }

    fn group(&mut self, gid: u32) -> String {
        self.groups
            .entry(gid)
            .or_insert_with(|| match Group::from_gid(Gid::from_raw(gid)) {
                Ok(Some(g)) => g.name,
                _ => String::new(),
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// name, typeflag, mode, uid, size, linkname, content
    type Item = (String, u8, u32, u64, u64, String, Vec<u8>);

    fn read_tar(data: &[u8]) -> Vec<Item> {
        let mut a = tar::Archive::new(data);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.to_vec()).unwrap())
                    .unwrap_or_default();
                let mut content = Vec::new();
                e.read_to_end(&mut content).unwrap();
                (
                    name,
                    h.entry_type().as_byte(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.size().unwrap(),
                    link,
                    content,
                )
            })
            .collect()
    }

    #[test]
    fn tar_is_shaped_like_dockers() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir(r.join("dir")).unwrap();
        fs::write(r.join("dir/a"), "hello\n").unwrap();
        fs::hard_link(r.join("dir/a"), r.join("dir/b")).unwrap();
        symlink("dir/a", r.join("link")).unwrap();
        let long = "x".repeat(120);
        fs::create_dir(r.join(&long)).unwrap();
        fs::write(r.join(&long).join("f"), "").unwrap();
        let entries = walk(r, &Ignore::default()).unwrap();
        let mut ctx = DirContext {
            root: r.to_path_buf(),
            dockerfile: "Dockerfile".into(),
            entries,
            replace: None,
            append: vec![],
        };
        add_dockerfile(&mut ctx, b"FROM scratch\n".to_vec()).unwrap();
        let data = write_tar(Vec::new(), &ctx).unwrap();
        let got = read_tar(&data);
        let summary: Vec<_> = got
            .iter()
            .map(|g| (g.0.as_str(), g.1, g.2, g.4, g.5.as_str()))
            .collect();
        assert_eq!(summary[0], ("dir/", b'5', 0o40755, 0, ""));
        assert_eq!(summary[1], ("dir/a", b'0', 0o100644, 6, ""));
        assert_eq!(summary[2], ("dir/b", b'1', 0o100644, 0, "dir/a"));
        assert_eq!(summary[3], ("link", b'2', 0o120777, 0, "dir/a"));
        assert_eq!(summary[4].0, format!("{long}/"));
        assert_eq!(summary[5].0, format!("{long}/f"));
        assert!(got.iter().all(|g| g.3 == 0));
        // Appended: the Dockerfile under its random name, then a .dockerignore naming it.
        assert_eq!(ctx.dockerfile, got[6].0);
        assert!(got[6].0.starts_with(".dockerfile.") && got[6].0.len() == 32);
        assert_eq!((got[6].2, &got[6].6[..]), (0o600, &b"FROM scratch\n"[..]));
        assert_eq!(got[7].0, ".dockerignore");
        assert_eq!(
            got[7].6,
            format!(".dockerignore\n{}\n", got[6].0).into_bytes()
        );
        // Two zero blocks end it, no record padding (Go's writer).
        assert_eq!(data.len() % 512, 0);
        assert!(data[data.len() - 1024..].iter().all(|b| *b == 0));
    }

    #[test]
    fn sniffs_archives() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "x").unwrap();
        let ctx = DirContext {
            root: t.path().to_path_buf(),
            dockerfile: "Dockerfile".into(),
            entries: walk(t.path(), &Ignore::default()).unwrap(),
            replace: None,
            append: vec![],
        };
        let data = write_tar(Vec::new(), &ctx).unwrap();
        assert!(is_archive(&data[..512]));
        assert!(is_archive(&[0x1f, 0x8b, 0x08, 0]));
        assert!(!is_archive(b"FROM busybox\nRUN true\n"));
        assert!(!is_archive(&[0u8; 512]));
    }

    fn prepared(root: &Path, file: Option<&str>) -> DirContext {
        match prepare(root.to_str().unwrap(), file).unwrap() {
            Prepared::Dir(d) => d,
            Prepared::Stdin { .. } => panic!("not a directory context"),
        }
    }

    fn paths(d: &DirContext) -> Vec<&str> {
        d.entries.iter().map(|(e, _)| e.path.as_str()).collect()
    }

    #[test]
    fn prepare_applies_dockers_rules() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        fs::create_dir_all(ctx.join("sub")).unwrap();
        for f in ["Dockerfile", "a.txt", "b.log", "sub/Dev.df"] {
            fs::write(ctx.join(f), f).unwrap();
        }
        // The Dockerfile and .dockerignore are sent even when excluded.
        fs::write(
            ctx.join(".dockerignore"),
            "*.log\nDockerfile\n.dockerignore\nsub\n",
        )
        .unwrap();
        let d = prepared(&ctx, None);
        assert_eq!(d.dockerfile, "Dockerfile");
        assert_eq!(paths(&d), [".dockerignore", "Dockerfile", "a.txt"]);
        // -f inside the context: kept though `sub` is not; `Dockerfile` is now just a file.
        let df = ctx.join("sub/Dev.df");
        let d = prepared(&ctx, Some(df.to_str().unwrap()));
        assert_eq!(d.dockerfile, "sub/Dev.df");
        assert_eq!(paths(&d), [".dockerignore", "a.txt", "sub/Dev.df"]);
        // <Dockerfile>.dockerignore beside it wins over the context's (BuildKit's rule).
        fs::write(ctx.join("sub/Dev.df.dockerignore"), "a.txt\n").unwrap();
        let d = prepared(&ctx, Some(df.to_str().unwrap()));
        assert_eq!(
            paths(&d),
            [
                ".dockerignore",
                "Dockerfile",
                "b.log",
                "sub",
                "sub/Dev.df",
                "sub/Dev.df.dockerignore"
            ]
        );
        // A Dockerfile outside the context travels as .dockerfile.<random>.
        let outside = t.path().join("Outside.df");
        fs::write(&outside, "FROM scratch\n").unwrap();
        let d = prepared(&ctx, Some(outside.to_str().unwrap()));
        assert!(d.dockerfile.starts_with(".dockerfile."));
        assert_eq!(d.append[0].name, d.dockerfile);
        let ignore = String::from_utf8(d.replace.unwrap().data).unwrap();
        assert!(
            ignore.ends_with(&format!("\n{}\n", d.dockerfile)),
            "{ignore}"
        );
        // Docker's errors.
        let missing = ctx.join("nope");
        let err = prepare(ctx.to_str().unwrap(), Some(missing.to_str().unwrap()))
            .err()
            .unwrap();
        assert_eq!(
            err,
            format!(
                "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
                missing.display()
            )
        );
        let err = prepare("/nonexistent-h2", None).err().unwrap();
        assert_eq!(
            err,
            "unable to prepare context: path \"/nonexistent-h2\" not found"
        );
        fs::write(ctx.join(".dockerignore"), "!\n").unwrap();
        let err = prepare(ctx.to_str().unwrap(), None).err().unwrap();
        assert_eq!(
            err,
            "error checking context: 'illegal exclusion pattern: \"!\"'."
        );
    }

    #[test]
    fn relative_paths_like_go() {
        assert_eq!(
            relative_path(Path::new("/a/b"), Path::new("/a/b/c/D")),
            "c/D"
        );
        assert_eq!(
            relative_path(Path::new("/a/b"), Path::new("/a/x/D")),
            "../x/D"
        );
        assert_eq!(
            split_ustar(&format!("{}/{}", "p".repeat(50), "n".repeat(60)))
                .unwrap()
                .0
                .len(),
            50
        );
        assert!(split_ustar(&"n".repeat(101)).is_none());
    }
}
