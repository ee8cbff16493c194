//! Every input of a build is hostile, and the daemon building it is root: the context tar,
//! the Dockerfile and its name, COPY/ADD sources and destinations, archives ADD unpacks, the
//! images `COPY --from` reads and the /etc/passwd `--chown` reads. None of them may make
//! the daemon read a host file into an image or write anything onto the host: names are
//! resolved inside the context or the image, as Docker's chroot'd archiver does.
//!
//! Each test plants a secret in a host directory, sends inputs that point at it every way
//! we know (`..`, absolute names, symlinks, hard links, links followed by files through
//! them), then checks that the host directory is unchanged, that nothing appeared elsewhere
//! on the host, and that no image the build made contains the secret.

use berth_e2e::{docker_cli, tempdir::TempDir, Daemon, Run};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const SECRET: &str = "host-secret-7f3a91c2";

/// A host directory holding the secret (`secret`) and a passwd-format file naming a user
/// only the host has (`passwd`).
struct Host {
    dir: TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = TempDir::new();
        std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();
        std::fs::write(
            dir.path().join("passwd"),
            format!("hostonly:x:4242:4242:{SECRET}:/:/bin/sh\n"),
        )
        .unwrap();
        Host { dir }
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// The host directory still holds exactly what we put there.
    fn assert_untouched(&self, what: &str) {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["passwd", "secret"],
            "{what}: the host directory was written"
        );
        assert_eq!(
            std::fs::read_to_string(self.dir.path().join("secret")).unwrap(),
            format!("{SECRET}\n"),
            "{what}"
        );
    }
}

/// Raw tar entries, names and link targets written byte for byte (the tar crate refuses
/// `..`, which is the point here).
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn header(name: &str, kind: tar::EntryType, link: &str, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        assert!(name.len() < 100 && link.len() < 100, "short names only");
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        h
    }

    fn push(&mut self, mut h: tar::Header, data: &[u8]) -> &mut RawTar {
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0
            .extend(std::iter::repeat(0u8).take((512 - data.len() % 512) % 512));
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut RawTar {
        let h = Self::header(name, tar::EntryType::Regular, "", data.len() as u64, 0o644);
        self.push(h, data)
    }

    fn dir(&mut self, name: &str) -> &mut RawTar {
        let h = Self::header(name, tar::EntryType::Directory, "", 0, 0o755);
        self.push(h, b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut RawTar {
        let h = Self::header(name, tar::EntryType::Symlink, target, 0, 0o777);
        self.push(h, b"")
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut RawTar {
        let h = Self::header(name, tar::EntryType::Link, target, 0, 0o644);
        self.push(h, b"")
    }

    fn device(&mut self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> &mut RawTar {
        let mut h = Self::header(name, kind, "", 0, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, b"")
    }

    /// PAX records for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut RawTar {
        let mut data = Vec::new();
        for (k, v) in records {
            // "<len> <key>=<value>\n", the length counting its own digits.
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let h = Self::header(
            "PaxHeaders/x",
            tar::EntryType::XHeader,
            "",
            data.len() as u64,
            0o644,
        );
        self.push(h, &data)
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.0);
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

fn docker(d: &Daemon) -> Command {
    let mut cmd = Command::new(docker_cli());
    cmd.env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", d.root.path().join("docker-config"));
    cmd
}

/// `docker build -t <tag> -` with `context` (a tar) on stdin, as the CLI sends it unchanged.
/// Bounded: a daemon that blocks on a FIFO must fail the test, not hang it.
fn build_tar(d: &Daemon, tag: &str, context: &[u8]) -> Run {
    build_tar_with(d, tag, context, &[])
}

/// [`build_tar`] with more `docker build` flags.
fn build_tar_with(d: &Daemon, tag: &str, context: &[u8], flags: &[&str]) -> Run {
    let mut child = Command::new("timeout")
        .arg("300")
        .arg(docker_cli())
        .args(["build", "-t", tag])
        .args(flags)
        .arg("-")
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let body = context.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let r: Run = out.into();
    assert_ne!(
        r.code,
        124,
        "docker build hung: {}{}\n{}",
        r.stdout,
        r.stderr,
        d.log()
    );
    r
}

/// A context tar: the Dockerfile, then `extra`'s entries.
fn context(dockerfile: &str, extra: impl FnOnce(&mut RawTar)) -> Vec<u8> {
    let mut t = RawTar::default();
    t.file("Dockerfile", dockerfile.as_bytes());
    extra(&mut t);
    t.finish()
}

/// The image `tag` as `docker save` writes it (every layer, uncompressed), if it exists.
fn saved(d: &Daemon, tag: &str) -> Option<Vec<u8>> {
    let out = docker(d)
        .args(["save", tag])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

/// The built image (if the build succeeded) has no byte of the secret in any layer.
fn assert_no_secret(d: &Daemon, tag: &str, r: &Run) {
    if r.code != 0 {
        return;
    }
    let image = saved(d, tag).unwrap_or_else(|| panic!("{tag}: built but cannot be saved"));
    let needle = SECRET.as_bytes();
    assert!(
        !image.windows(needle.len()).any(|w| w == needle),
        "{tag}: the host's secret is in the image\n{}{}",
        r.stdout,
        r.stderr
    );
}

/// The (uid, gid) of `path` in each layer of a `docker save` archive that has it.
fn layer_owners(image: &[u8], path: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(image);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() != tar::EntryType::Regular || e.size() < 1024 {
            continue;
        }
        // Layers are the members that are tars themselves (`layer.tar` or OCI blobs).
        let mut layer = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut layer).unwrap();
        let mut inner = tar::Archive::new(&layer[..]);
        let Ok(files) = inner.entries() else { continue };
        for f in files {
            let Ok(f) = f else { break };
            if f.path().unwrap().to_string_lossy().trim_start_matches("./") == path {
                out.push((f.header().uid().unwrap(), f.header().gid().unwrap()));
            }
        }
    }
    out
}

/// `docker run --rm <image> sh -c <script>`: (exit code, stdout).
fn run_in(d: &Daemon, image: &str, script: &str) -> (i32, String) {
    let r = d.docker(&["run", "--rm", image, "sh", "-c", script]);
    (r.code, r.stdout)
}

fn assert_built(r: &Run, what: &str, d: &Daemon) {
    assert_eq!(
        r.code,
        0,
        "{what}: {}{}\n--- daemon log ---\n{}",
        r.stdout,
        r.stderr,
        d.log()
    );
}

fn assert_failed(r: &Run, what: &str, expect: &str) {
    assert_ne!(r.code, 0, "{what} built: {}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(expect) || r.stdout.contains(expect),
        "{what}: want {expect:?} in\n{}{}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn a_hostile_context_tar_stays_inside_the_context() {
    let d = Daemon::start();
    let host = Host::new();
    let h = host.path().trim_start_matches('/').to_string();
    let marker = format!("berth-build-sec-{}", std::process::id());
    let dockerfile = "FROM busybox\nCOPY . /ctx/\n";

    // `..` and absolute names land inside the context, as in Docker's chroot'd untar.
    let tar = context(dockerfile, |t| {
        t.file(&format!("../../../../../../tmp/{marker}-dotdot"), b"x")
            .file(&format!("/tmp/{marker}-abs"), b"y")
            .device("null", tar::EntryType::Char, 1, 3)
            .device("disk", tar::EntryType::Block, 8, 0)
            .device("fifo", tar::EntryType::Fifo, 0, 0);
    });
    let r = build_tar(&d, "sec:names", &tar);
    assert_built(&r, "names", &d);
    for suffix in ["dotdot", "abs"] {
        assert!(
            !Path::new(&format!("/tmp/{marker}-{suffix}")).exists(),
            "{suffix}"
        );
    }
    let (code, out) = run_in(
        &d,
        "sec:names",
        &format!("cat /ctx/tmp/{marker}-dotdot /ctx/tmp/{marker}-abs; ls /ctx"),
    );
    assert_eq!(code, 0, "{out}");
    // Device nodes and FIFOs are no context content.
    assert_eq!(out, "xyDockerfile\ntmp\n");

    // A file written through a symlink the tar made first: refused, as untar refuses it.
    let tar = context(dockerfile, |t| {
        t.symlink("evil", host.path()).file("evil/planted", b"z");
    });
    let r = build_tar(&d, "sec:through", &tar);
    assert_failed(&r, "a file through a symlink", "symbolic link");
    host.assert_untouched("a file through a symlink");

    // Hard links to host files, absolute or climbing out: nothing of that name in the
    // context, so the untar fails.
    for target in [format!("/{h}/secret"), format!("../../../../../{h}/secret")] {
        let tar = context(dockerfile, |t| {
            t.hardlink("hl", &target);
        });
        let r = build_tar(&d, "sec:hardlink", &tar);
        assert_failed(&r, &target, "no such file or directory");
        assert_no_secret(&d, "sec:hardlink", &r);
    }

    // Symlinks to host files copy as links, and COPY of one resolves inside the context.
    let tar = context(
        &format!("FROM busybox\nCOPY . /ctx/\nCOPY abs-link /got\n"),
        |t| {
            t.symlink("abs-link", &format!("/{h}/secret"))
                .symlink("up-link", &format!("../../../../{h}/secret"));
        },
    );
    let r = build_tar(&d, "sec:links", &tar);
    assert_failed(&r, "COPY of a link to a host file", "file does not exist");
    assert_no_secret(&d, "sec:links", &r);
    let tar = context(dockerfile, |t| {
        t.symlink("abs-link", &format!("/{h}/secret"))
            .symlink("dir-link", &format!("/{h}"));
    });
    let r = build_tar(&d, "sec:links2", &tar);
    assert_built(&r, "links copied as links", &d);
    assert_no_secret(&d, "sec:links2", &r);
    let (_, out) = run_in(&d, "sec:links2", "readlink /ctx/abs-link");
    assert_eq!(out.trim(), format!("/{h}/secret"));
    host.assert_untouched("context tars");
}

#[test]
fn a_context_tar_that_lies_about_sizes_fails_and_leaves_nothing() {
    let d = Daemon::start();
    let tmp = d.data_root.join("build/context/tmp");
    // A file claiming a terabyte, then the stream ends.
    let mut t = RawTar::default();
    t.file("Dockerfile", b"FROM busybox\nCOPY . /\n");
    let mut bytes = t.0.clone();
    let mut h = RawTar::header("huge", tar::EntryType::Regular, "", 1 << 40, 0o644);
    h.set_cksum();
    bytes.extend_from_slice(h.as_bytes());
    bytes.extend_from_slice(&[b'a'; 4096]);
    let r = build_tar(&d, "sec:huge", &bytes);
    assert_failed(&r, "a truncated terabyte", "unexpected EOF");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|rd| rd.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "temp files left: {left:?}");
    // The daemon still builds.
    let tar = context("FROM busybox\nRUN true\n", |_| {});
    assert_built(&build_tar(&d, "sec:after", &tar), "a build after", &d);
}

#[test]
fn an_added_archive_unpacks_inside_its_destination() {
    let d = Daemon::start();
    let host = Host::new();
    let h = host.path().trim_start_matches('/').to_string();
    let marker = format!("berth-add-sec-{}", std::process::id());
    // One archive per trick, so a refusal of one cannot hide what another does.
    let tricks: Vec<(&str, Box<dyn Fn(&mut RawTar)>)> = vec![
        (
            "dotdot",
            Box::new(|t: &mut RawTar| {
                t.file(&format!("../../../../../../tmp/{marker}-dotdot"), b"x");
            }),
        ),
        (
            "abs",
            Box::new(|t: &mut RawTar| {
                t.file(&format!("/tmp/{marker}-abs"), b"y");
            }),
        ),
        (
            "through a link",
            Box::new(|t: &mut RawTar| {
                t.symlink("lnk", host.path()).file("lnk/planted", b"z");
            }),
        ),
        (
            "through a relative link",
            Box::new(|t: &mut RawTar| {
                t.symlink("up", "../../../../../../..")
                    .file(&format!("up/{h}/planted"), b"z");
            }),
        ),
        (
            "hard link, absolute",
            Box::new(|t: &mut RawTar| {
                t.hardlink("hl", &format!("/{h}/secret"));
            }),
        ),
        (
            "hard link, climbing",
            Box::new(|t: &mut RawTar| {
                t.hardlink("hl2", &format!("../../../../../{h}/secret"));
            }),
        ),
        (
            "hard link through a link",
            Box::new(|t: &mut RawTar| {
                t.symlink("root", "/")
                    .hardlink("hl3", &format!("root/{h}/secret"));
            }),
        ),
        (
            "devices",
            Box::new(|t: &mut RawTar| {
                t.device("disk", tar::EntryType::Block, 8, 0)
                    .device("mem", tar::EntryType::Char, 1, 1)
                    .file("kept", b"k");
            }),
        ),
    ];
    for (what, trick) in &tricks {
        let mut inner = RawTar::default();
        trick(&mut inner);
        let inner = inner.finish();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&inner).unwrap();
        let gz = gz.finish().unwrap();
        for (name, bytes) in [("evil.tar", &inner), ("evil.tar.gz", &gz)] {
            let tar = context(&format!("FROM busybox\nADD {name} /dst/\n"), |t| {
                t.file(name, bytes);
            });
            let tag = "sec:add";
            let r = build_tar(&d, tag, &tar);
            let what = format!("{what} ({name})");
            host.assert_untouched(&what);
            for suffix in ["dotdot", "abs"] {
                let p = format!("/tmp/{marker}-{suffix}");
                assert!(!Path::new(&p).exists(), "{what}: {p}");
            }
            assert_no_secret(&d, tag, &r);
            if *what == *"devices (evil.tar)" {
                // The files come; device nodes are no copy's business.
                assert_built(&r, &what, &d);
                let (_, out) = run_in(&d, tag, "ls /dst");
                assert_eq!(out, "kept\n", "{what}");
            }
        }
    }
}

#[test]
fn copy_from_an_image_resolves_its_symlinks_inside_it() {
    let d = Daemon::start();
    let host = Host::new();
    let hp = host.path();
    let dockerfile = |copy: &str| {
        format!(
            "FROM busybox AS s\n\
             RUN ln -s {hp}/secret /flink && ln -s {hp} /dlink && mkdir /d && \
             ln -s {hp}/secret /d/inner && ln -s / /rootlink\n\
             FROM busybox\n{copy}\n"
        )
    };
    // Each names the host secret through a link in the stage: none resolves outside it.
    for copy in [
        "COPY --from=s /flink /got".to_string(),
        "COPY --from=s /dlink/secret /got".to_string(),
        format!("COPY --from=s /rootlink{hp}/secret /got"),
        format!("COPY --from=s /rootlink/../../..{hp}/secret /got"),
    ] {
        let r = build_tar(&d, "sec:from", &context(&dockerfile(&copy), |_| {}));
        // Not found in the stage, or (lexically above its root) forbidden.
        assert_failed(&r, &copy, "COPY failed: ");
        assert_no_secret(&d, "sec:from", &r);
    }
    // Links inside a copied directory stay links.
    let r = build_tar(
        &d,
        "sec:from-dir",
        &context(&dockerfile("COPY --from=s /d /d/"), |_| {}),
    );
    assert_built(&r, "a directory holding a link", &d);
    assert_no_secret(&d, "sec:from-dir", &r);
    let (_, out) = run_in(&d, "sec:from-dir", "readlink /d/inner");
    assert_eq!(out.trim(), format!("{hp}/secret"));
    host.assert_untouched("COPY --from");
}

#[test]
fn chown_reads_only_the_images_own_passwd() {
    let d = Daemon::start();
    let host = Host::new();
    let hp = host.path();
    // /etc/passwd a symlink to a host file that names `hostonly`.
    let df =
        format!("FROM busybox\nRUN ln -sf {hp}/passwd /etc/passwd\nCOPY --chown=hostonly f /f\n");
    let r = build_tar(
        &d,
        "sec:chown",
        &context(&df, |t| {
            t.file("f", b"f");
        }),
    );
    assert_failed(&r, "--chown through a symlinked passwd", "hostonly");
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET));
    // /etc as a whole a link to the host directory (a RUN cannot replace /etc: the
    // container's /etc/hosts is mounted there; the context's link is copied as a link).
    let df = "FROM scratch\nCOPY . /\nCOPY --chown=hostonly f /f2\n";
    let r = build_tar(
        &d,
        "sec:chown",
        &context(df, |t| {
            t.symlink("etc", hp).file("f", b"f");
        }),
    );
    assert_failed(&r, "--chown through a symlinked /etc", "hostonly");
    // A FIFO as /etc/passwd: not opened (the build would block forever).
    let df = "FROM busybox\nRUN rm /etc/passwd && mkfifo /etc/passwd\nCOPY --chown=root f /f\n";
    let r = build_tar(
        &d,
        "sec:chown",
        &context(df, |t| {
            t.file("f", b"f");
        }),
    );
    assert_failed(
        &r,
        "--chown with a FIFO passwd",
        "can't find uid for user root",
    );
    // Numeric ids need no passwd at all.
    let df =
        "FROM busybox\nRUN rm /etc/passwd && mkfifo /etc/passwd\nCOPY --chown=4242:4243 f /f\n";
    let r = build_tar(
        &d,
        "sec:chown",
        &context(df, |t| {
            t.file("f", b"f");
        }),
    );
    assert_built(&r, "numeric --chown", &d);
    // (Not by running it: the runtime itself would block on that FIFO, as runc does.)
    let owners = layer_owners(&saved(&d, "sec:chown").unwrap(), "f");
    assert_eq!(owners.last(), Some(&(4242, 4243)), "{owners:?}");
    host.assert_untouched("--chown");
}

#[test]
fn destinations_and_workdirs_resolve_inside_the_image() {
    let d = Daemon::start();
    let host = Host::new();
    let hp = host.path();
    let df = format!(
        "FROM busybox\n\
         RUN ln -s {hp} /evil && ln -s ../../../../..{hp} /evil2 && mkdir /w\n\
         COPY f /evil/planted1\n\
         COPY f /evil2/planted2\n\
         COPY f /evil/../../../..{hp}/planted3\n\
         WORKDIR /w\n\
         COPY f ../../../../..{hp}/planted4\n\
         COPY f /evil/sub/\n\
         WORKDIR /evil/wd\n\
         ADD f /evil2/planted5\n"
    );
    let r = build_tar(
        &d,
        "sec:dest",
        &context(&df, |t| {
            t.file("f", b"copied\n");
        }),
    );
    assert_built(&r, "destinations through links", &d);
    host.assert_untouched("destinations");
    // Everything went into the image's own directory of that name.
    let (code, out) = run_in(
        &d,
        "sec:dest",
        &format!(
            "cd {hp} && ls planted1 planted2 planted3 planted4 planted5 sub/f wd && cat planted1"
        ),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("copied\n"), "{out}");
}

#[test]
fn the_dockerfile_parameter_stays_inside_the_context() {
    let d = Daemon::start();
    let ctx = context("FROM busybox\n", |t| {
        t.symlink("Linked", "/etc/passwd")
            .symlink("Up", "../../../../etc/passwd");
    });
    for name in ["../../etc/passwd", "/etc/passwd", "Linked", "Up"] {
        let out = Command::new("curl")
            .args(["-sS", "--unix-socket"])
            .arg(&d.socket)
            .args([
                "-X",
                "POST",
                "-H",
                "Content-Type: application/x-tar",
                "--data-binary",
                "@-",
            ])
            .arg(format!(
                "http://d/build?dockerfile={}",
                name.replace('/', "%2F")
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(&ctx)?;
                c.wait_with_output()
            })
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            body.contains("Cannot locate specified Dockerfile"),
            "{name}: {body}"
        );
        assert!(
            !body.contains("root:x:0:0"),
            "{name}: the host's passwd was read: {body}"
        );
    }
}

#[test]
fn context_xattrs_cannot_instruct_overlayfs() {
    let d = Daemon::start();
    // A directory that would be opaque (hiding the image's /etc) and redirected, and a file
    // claiming to be a metacopy of another inode: only the store may set overlay xattrs.
    let ctx = context("FROM busybox\nCOPY sub/ /\n", |t| {
        t.dir("sub/")
            .pax(&[
                ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
                ("SCHILY.xattr.trusted.overlay.redirect", b"/bin"),
            ])
            .dir("sub/etc/")
            .pax(&[("SCHILY.xattr.trusted.overlay.metacopy", b"")])
            .file("sub/etc/added", b"added\n")
            .pax(&[("SCHILY.xattr.user.kept", b"v")])
            .file("sub/etc/plain", b"plain\n");
    });
    let r = build_tar(&d, "sec:xattr", &ctx);
    assert_built(&r, "xattrs", &d);
    let r = d.docker(&[
        "run",
        "--rm",
        "sec:xattr",
        "sh",
        "-c",
        "cat /etc/added && grep -c ^root: /etc/passwd",
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "added\n1\n"),
        "the image's /etc was hidden or its file unreadable: {}",
        r.stderr
    );
    let image = saved(&d, "sec:xattr").unwrap();
    let needle = b"trusted.overlay";
    assert!(
        !image.windows(needle.len()).any(|w| w == needle),
        "an overlay xattr is in the image's layer"
    );
    let needle = b"SCHILY.xattr.user.kept";
    assert!(
        image.windows(needle.len()).any(|w| w == needle),
        "other xattrs are kept"
    );
}

#[test]
fn a_huge_passwd_is_not_read_into_memory() {
    let d = Daemon::start();
    // A sparse /etc/passwd costs the image nothing on disk; read whole, a terabyte of it
    // would take the root daemon's memory. Past the limit nothing is read (Docker's
    // line scanner fails on the first long line the same way).
    let df = "FROM busybox\n\
              RUN truncate -s 40M /etc/passwd && printf '\\nlate:x:4343:4343::/:/bin/sh\\n' >> /etc/passwd\n\
              COPY --chown=late:0 f /f\n";
    let r = build_tar(
        &d,
        "sec:bigpasswd",
        &context(df, |t| {
            t.file("f", b"f");
        }),
    );
    assert_failed(&r, "a 40 MB passwd", "can't find uid for user late");
    // A normal one still works.
    let df = "FROM busybox\nRUN echo 'app:x:4343:4343::/:/bin/sh' >> /etc/passwd\nCOPY --chown=app:0 f /f\n";
    let r = build_tar(
        &d,
        "sec:passwd",
        &context(df, |t| {
            t.file("f", b"f");
        }),
    );
    assert_built(&r, "a normal passwd", &d);
    let owners = layer_owners(&saved(&d, "sec:passwd").unwrap(), "f");
    assert_eq!(owners.last(), Some(&(4343, 0)), "{owners:?}");
}

/// Paths under `dir` whose name is `name`.
fn find_named(dir: &Path, name: &str, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let ft = e.file_type().unwrap();
        if e.file_name() == name {
            out.push(e.path());
        }
        if ft.is_dir() && !ft.is_symlink() {
            find_named(&e.path(), name, out);
        }
    }
}

#[test]
fn host_users_cannot_reach_what_a_build_wrote() {
    for driver in ["overlay2", "vfs"] {
        let d = Daemon::start_with(&["--storage-driver", driver]);
        host_users_cannot_reach(&d);
    }
}

fn host_users_cannot_reach(d: &Daemon) {
    // A set-uid root program in a layer must not be runnable by the host's users (as
    // CVE-2021-41091 was for dockerd), nor any layer's files readable by them.
    let name = format!("setuid-{}", std::process::id());
    let mut t = RawTar::default();
    t.file(
        "Dockerfile",
        format!("FROM busybox\nCOPY {name} /\nRUN true\n").as_bytes(),
    );
    let mut h = RawTar::header(&name, tar::EntryType::Regular, "", 7, 0o4755);
    h.set_uid(0);
    t.push(h, b"secret\n");
    let r = build_tar(&d, "sec:setuid", &t.finish());
    assert_built(&r, "a set-uid file", &d);
    let cid = d.ok(&["create", "sec:setuid"]);
    let mut found = Vec::new();
    find_named(&d.data_root, &name, &mut found);
    assert!(
        !found.is_empty(),
        "the layer file is somewhere under the data root"
    );
    for path in found {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "nobody read {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    d.ok(&["rm", &cid]);
    // Containers' own users still reach their files.
    let r = d.docker(&[
        "run",
        "--rm",
        "-u",
        "65534:65534",
        "sec:setuid",
        "cat",
        &format!("/{name}"),
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "secret\n"), "{}", r.stderr);
}

#[test]
fn a_volume_through_a_symlink_mounts_inside_the_container() {
    let d = Daemon::start();
    let host = Host::new();
    let hp = host.path();
    // The RUN after VOLUME gets an anonymous volume at a path leading through a link to
    // the host directory's name: it must be mounted inside the container's root.
    let df = format!(
        "FROM busybox\n\
         RUN ln -s {hp} /evil && ln -s ../../../..{hp} /evil2\n\
         VOLUME /evil/vol /evil2/vol2\n\
         RUN echo planted > /evil/vol/planted && echo planted > /evil2/vol2/planted\n"
    );
    // (dockerd mounts it at the link's target inside the container; berth's runtime
    // refuses the mount. Either way, never on the host.)
    let _ = build_tar(&d, "sec:volume", &context(&df, |_| {}));
    host.assert_untouched("VOLUME");
    let mut mounted = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mounted.retain(|c| c != '\n');
    assert!(
        !mounted.contains(hp),
        "something is mounted on the host directory"
    );
}

/// `curl` against the daemon: (HTTP status, body).
fn curl(d: &Daemon, method: &str, url: &str, body: &[u8]) -> (u16, String) {
    let mut child = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&d.socket)
        .args(["-X", method, "--data-binary", "@-"])
        .arg(format!("http://d{url}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

#[test]
fn a_registered_manifest_cannot_name_anything_outside_the_store() {
    let d = Daemon::start();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let file = |path: &str, digest: &str| {
        format!(
            r#"{{"path":"{path}","type":"file","mode":33188,"size":1,"mtime":0,"digest":"{digest}"}}"#
        )
    };
    let dir =
        |path: &str| format!(r#"{{"path":"{path}","type":"dir","mode":16877,"size":0,"mtime":0}}"#);
    let link = |path: &str, to: &str| {
        format!(
            r#"{{"path":"{path}","type":"symlink","mode":41471,"size":0,"mtime":0,"linkname":"{to}"}}"#
        )
    };
    let cases = [
        vec![file("../x", &digest)],
        vec![file("/etc/x", &digest)],
        vec![dir("a"), file("a/../../x", &digest)],
        vec![file("x", "sha256:../../../../etc/shadow")],
        vec![file("x", "/etc/shadow")],
        // A file under a symlink: the tree would lead through it.
        vec![link("l", "/etc"), file("l/passwd", &digest)],
    ];
    for lines in cases {
        let body = lines.join("\n") + "\n";
        let (code, text) = curl(&d, "POST", "/build/context?key=abc123", body.as_bytes());
        assert_eq!(code, 400, "{body}: {text}");
    }
    for key in ["..%2F..%2Fx", "a%2Fb", ""] {
        let body = file("x", &digest) + "\n";
        let (code, text) = curl(
            &d,
            "POST",
            &format!("/build/context?key={key}"),
            body.as_bytes(),
        );
        assert_eq!(code, 400, "key {key}: {text}");
    }
    // Uploads are named by their content's digest, and checked against it.
    let body = file("x", &digest) + "\n";
    let (code, text) = curl(&d, "POST", "/build/context?key=abc123", body.as_bytes());
    assert_eq!(code, 200, "{text}");
    let id = text.split('"').nth(3).unwrap().to_string();
    let mut t = RawTar::default();
    t.file(&"ab".repeat(32), b"y");
    let (code, text) = curl(
        &d,
        "PUT",
        &format!("/build/context/{id}/blobs"),
        &t.finish(),
    );
    assert_eq!(code, 400, "{text}");
    let mut t = RawTar::default();
    t.file("../../../../tmp/x", b"y");
    let (code, text) = curl(
        &d,
        "PUT",
        &format!("/build/context/{id}/blobs"),
        &t.finish(),
    );
    assert_eq!(code, 400, "{text}");
    for bad in ["..%2F..%2Fetc", "sha256:..%2F..%2Fetc"] {
        let (code, text) = curl(&d, "PUT", &format!("/build/context/{bad}/blobs"), b"");
        assert!(code == 400 || code == 404, "{bad}: {code} {text}");
    }
}

#[test]
fn build_args_expand_to_paths_that_stay_inside() {
    let d = Daemon::start();
    let host = Host::new();
    let hp = host.path();
    let up = "../../../../../..";
    let df = "FROM busybox\nARG UP\nARG HOSTDIR\nRUN ln -s $HOSTDIR /evil\n\
              COPY f $UP$HOSTDIR/planted\nCOPY f /evil/${UP}/planted2\nWORKDIR $UP/$HOSTDIR/wd\n";
    let ctx = context(df, |t| {
        t.file("f", b"f\n");
    });
    let args = [
        "--build-arg",
        &format!("UP={up}"),
        "--build-arg",
        &format!("HOSTDIR={hp}"),
    ];
    let r = build_tar_with(&d, "sec:args", &ctx, &args);
    assert_built(&r, "expanded destinations", &d);
    host.assert_untouched("expanded destinations");
    let (code, out) = run_in(
        &d,
        "sec:args",
        &format!("ls {hp}/planted /planted2 {hp}/wd && pwd"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with(&format!("{hp}/wd\n")), "{out}");
    // Sources: climbing out of the context is refused whatever spelled it.
    let df = "FROM busybox\nARG UP\nCOPY $UP/etc/passwd /p\n";
    let r = build_tar_with(&d, "sec:args2", &context(df, |_| {}), &args);
    assert_failed(
        &r,
        "an expanded source",
        "forbidden path outside the build context",
    );
    let df = "FROM busybox\nARG HOSTDIR\nCOPY ${HOSTDIR}/secret /p\n";
    let r = build_tar_with(&d, "sec:args2", &context(df, |_| {}), &args);
    assert_failed(&r, "an absolute expanded source", "file does not exist");
    assert_no_secret(&d, "sec:args2", &r);
}

#[test]
fn a_registered_manifest_is_bounded_before_it_is_parsed() {
    let d = Daemon::start();
    // More lines than a context may have entries: refused on the count, unparsed.
    let body = "x\n".repeat((1 << 20) + 1);
    let (code, text) = curl(&d, "POST", "/build/context?key=abc123", body.as_bytes());
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("build context has more than 1048576 entries"),
        "{text}"
    );
    // A body past the limit is not read whole.
    let body = vec![b' '; (256 << 20) + 1];
    let (code, text) = curl(&d, "POST", "/build/context?key=abc123", &body);
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("build context manifest is larger than 256 MiB"),
        "{text}"
    );
}

/// What a host user outside root's group can read under `dir`: files and directory listings
/// reachable through directories they may walk through.
fn readable_by_others(dir: &Path, out: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        let mode = meta.permissions().mode();
        // A volume's own files are its users' business (dockerd's `_data` is 0755 too).
        if meta.file_type().is_symlink() || e.file_name() == "_data" {
            continue;
        }
        if mode & 0o004 != 0 {
            out.push(format!("{:o} {}", mode & 0o7777, e.path().display()));
        }
        if meta.is_dir() && mode & 0o001 != 0 {
            readable_by_others(&e.path(), out);
        }
    }
}

#[test]
fn host_users_cannot_read_the_data_root() {
    use std::os::unix::fs::PermissionsExt;
    for driver in ["overlay2", "vfs"] {
        let mut d = Daemon::start_with(&["--storage-driver", driver]);
        // Every kind of thing the daemon stores: image layers (pulled/imported, built and
        // saved), configs, contexts, a container with its config, a volume.
        let ctx = context("FROM busybox\nCOPY f /f\nRUN echo built > /g\n", |t| {
            t.file("f", b"f\n");
        });
        assert_built(&build_tar(&d, "perm:built", &ctx), "a build", &d);
        assert!(saved(&d, "perm:built").is_some());
        d.ok(&["volume", "create", "permvol"]);
        let cid = d.ok(&["create", "-v", "permvol:/v", "perm:built"]);
        let check = |d: &Daemon, when: &str| {
            let mut out = Vec::new();
            readable_by_others(&d.data_root, &mut out);
            assert!(
                out.is_empty(),
                "{driver}, {when}: host users can read\n{}",
                out.join("\n")
            );
        };
        check(&d, "new data root");
        // A data root an older berthd left open is closed at the next start.
        d.kill_daemon(libc::SIGTERM);
        for name in ["blobs", "compressed", "layer-index", "containers", "build"] {
            let p = d.data_root.join(name);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let db = d.data_root.join("berth.db");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        d.spawn();
        check(&d, "restarted");
        d.ok(&["rm", &cid]);
    }
}

#[test]
fn an_oversized_long_name_is_not_read_into_memory() {
    let d = Daemon::start();
    // A GNU long name (or PAX header) is a whole member read before the entry it names: past
    // Go's 1 MiB it is refused, not held (dockerd 20.10 words it "unexpected EOF").
    let long_name = |name: &[u8]| {
        let mut t = RawTar::default();
        t.file("Dockerfile", b"FROM busybox\nCOPY . /ctx/\n");
        let size = name.len() as u64;
        let mut h = RawTar::header(
            "././@LongLink",
            tar::EntryType::GNULongName,
            "",
            size,
            0o644,
        );
        h.as_mut_bytes()[257..265].copy_from_slice(b"ustar  \0");
        t.push(h, name);
        t.file("x", b"x");
        t.finish()
    };
    let r = build_tar(&d, "sec:longname", &long_name(&vec![b'a'; (1 << 20) + 512]));
    assert_failed(
        &r,
        "a 1 MiB long name",
        "Error processing tar file(exit status 1): unexpected EOF",
    );
    let name = format!("long/{}", "n".repeat(200));
    let r = build_tar(&d, "sec:longname", &long_name(name.as_bytes()));
    assert_built(&r, "a 205-byte long name", &d);
    let (code, out) = run_in(&d, "sec:longname", &format!("cat /ctx/{name}"));
    assert_eq!((code, out.as_str()), (0, "x"));
}
