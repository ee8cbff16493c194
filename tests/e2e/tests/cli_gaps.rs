//! Small Docker-compatibility gaps: `ps -s` sizes, the template `json` function's escaping,
//! and `Parent` in `save`/`load` archives. Expected texts are what Docker 20.10 (dockerd and
//! its CLI) prints for the same steps.

use berth_e2e::{tempdir::TempDir, Daemon};
use std::path::Path;

/// `manifest.json` of a save archive.
fn manifest(archive: &Path) -> Vec<serde_json::Value> {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).expect("open archive"));
    for entry in tar.entries().expect("read archive") {
        let entry = entry.expect("read entry");
        if entry.path().unwrap().as_os_str() == "manifest.json" {
            return serde_json::from_reader(entry).expect("manifest.json is JSON");
        }
    }
    panic!("no manifest.json in {}", archive.display());
}

/// `archive` with its `manifest.json` replaced by `entries`, written to `out`.
fn with_manifest(archive: &Path, entries: &[serde_json::Value], out: &Path) {
    let mut input = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let mut builder = tar::Builder::new(std::fs::File::create(out).unwrap());
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().clone();
        if entry.path().unwrap().as_os_str() == "manifest.json" {
            let json = serde_json::to_vec(entries).unwrap();
            header.set_size(json.len() as u64);
            header.set_cksum();
            builder.append(&header, &json[..]).unwrap();
        } else {
            builder.append(&header, &mut entry).unwrap();
        }
    }
    builder.finish().unwrap();
}

#[test]
fn ps_size_shows_the_writable_layer_and_the_virtual_size() {
    let d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "sized",
        "busybox",
        "sh",
        "-c",
        "echo hello > /f",
    ]);
    let image_size = d.ok(&["images", "--format", "{{.Size}}", "busybox"]);
    let want = format!("6B (virtual {image_size})");

    // `-s` adds docker's SIZE column to the default table, from both CLIs.
    for out in [
        d.ok(&["ps", "-a", "-s"]),
        d.docker(&["ps", "-a", "-s"]).stdout,
    ] {
        let mut lines = out.lines();
        let header = lines.next().unwrap();
        assert!(header.ends_with("NAMES     SIZE"), "{out}");
        let row = lines.next().unwrap();
        assert!(row.ends_with(&format!("sized     {want}")), "{out}");
    }
    // A format naming `.Size` asks the daemon for sizes without `-s`.
    assert_eq!(
        d.ok(&["ps", "-a", "--format", "{{.Names}} {{.Size}}"]),
        format!("sized {want}")
    );
    let r = d.docker(&["ps", "-a", "--format", "{{.Names}} {{.Size}}"]);
    assert_eq!(r.stdout.trim(), format!("sized {want}"), "{}", r.stderr);
    // `-s` with a format of its own adds no column.
    assert_eq!(d.ok(&["ps", "-a", "-s", "--format", "{{.Names}}"]), "sized");

    // The API: SizeRw and SizeRootFs only when asked for.
    let r = d.docker(&["ps", "-a", "-s", "--format", "{{json .}}"]);
    assert!(
        r.stdout.contains(&format!(r#""Size":"{want}""#)),
        "{}",
        r.stdout
    );
    let list = |query: &str| -> serde_json::Value {
        let out = std::process::Command::new("curl")
            .args(["-s", "--unix-socket", d.socket.to_str().unwrap()])
            .arg(format!("http://berth/v1.41/containers/json?all=1{query}"))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let sized = list("&size=true");
    assert_eq!(sized[0]["SizeRw"], 6, "{sized}");
    assert!(sized[0]["SizeRootFs"].as_i64().unwrap() > 6, "{sized}");
    let without_sizes = list("");
    assert!(
        without_sizes[0].get("SizeRw").is_none() && without_sizes[0].get("SizeRootFs").is_none(),
        "{without_sizes}"
    );
}

#[test]
fn template_json_escapes_html_only_in_formatter_rows() {
    let d = Daemon::start();
    d.ok(&[
        "create", "--name", "tagged", "-l", "x=a<b>&c", "busybox", "true",
    ]);
    for cli in ["berth", "docker"] {
        let run = |args: &[&str]| {
            let r = if cli == "berth" {
                d.berth(args)
            } else {
                d.docker(args)
            };
            assert_eq!(r.code, 0, "{cli} {args:?}: {}", r.stderr);
            r.stdout.trim().to_string()
        };
        // Docker's `json` does not HTML-escape...
        assert_eq!(
            run(&["inspect", "-f", "{{json .Config.Labels}}", "tagged"]),
            r#"{"x":"a<b>&c"}"#,
            "{cli}"
        );
        assert_eq!(
            run(&["ps", "-a", "--format", "{{json .Labels}}"]),
            r#""x=a<b>&c""#,
            "{cli}"
        );
        // ...but a list row marshals itself with Go's escaping encoder.
        let row = run(&["ps", "-a", "--format", "{{json .}}"]);
        assert!(
            row.contains(r#""Labels":"x=a\u003cb\u003e\u0026c""#),
            "{cli}: {row}"
        );
        let image = run(&["images", "--format", "{{json .}}", "busybox"]);
        assert!(
            image.contains(r#""Digest":"\u003cnone\u003e""#),
            "{cli}: {image}"
        );
        assert_eq!(
            run(&["images", "--format", "{{json .Digest}}", "busybox"]),
            r#""<none>""#,
            "{cli}"
        );
    }
}

#[test]
fn save_names_a_saved_parent_and_load_restores_it() {
    let d = Daemon::start();
    let tmp = TempDir::new();
    let base = d.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    d.ok(&[
        "run",
        "--name",
        "maker",
        "busybox",
        "sh",
        "-c",
        "echo child > /file",
    ]);
    let child = d.ok(&["commit", "maker", "child:v1"]);
    d.ok(&["rm", "maker"]);

    // Alone, the child names no parent: the archive would not hold it.
    let alone = tmp.path().join("alone.tar");
    d.ok(&["save", "-o", alone.to_str().unwrap(), "child:v1"]);
    let entries = manifest(&alone);
    assert_eq!(entries.len(), 1);
    assert!(entries[0].get("Parent").is_none(), "{entries:?}");

    let both = tmp.path().join("both.tar");
    d.ok(&["save", "-o", both.to_str().unwrap(), "busybox", "child:v1"]);
    let entries = manifest(&both);
    let child_entry = entries
        .iter()
        .find(|e| e["RepoTags"][0] == "child:v1")
        .unwrap();
    assert_eq!(child_entry["Parent"], base.as_str(), "{entries:?}");
    let base_entry = entries
        .iter()
        .find(|e| e["RepoTags"][0] == "busybox:latest")
        .unwrap();
    assert!(base_entry.get("Parent").is_none(), "{entries:?}");

    // A link that is not a commit's (the base's history is not one longer than the child's)
    // fails the load as moby's loader does, and nothing is loaded.
    let mut swapped = entries.clone();
    for e in &mut swapped {
        let obj = e.as_object_mut().unwrap();
        if obj.remove("Parent").is_none() {
            obj.insert("Parent".into(), child.as_str().into());
        }
    }
    let bad = tmp.path().join("bad.tar");
    with_manifest(&both, &swapped, &bad);
    d.ok(&["rmi", "child:v1"]);
    let r = d.docker(&["load", "-i", bad.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains(&format!("image {child} is not a valid parent for {base}")),
        "{}",
        r.stderr
    );
    assert_ne!(
        d.berth(&["image", "inspect", "child:v1"]).code,
        0,
        "nothing loaded"
    );

    // The good archive brings the link back, seen by both CLIs and by `rmi`'s rules.
    d.ok(&["load", "-i", both.to_str().unwrap()]);
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Parent}}", "child:v1"]),
        base
    );
    let r = d.docker(&["image", "inspect", "-f", "{{.Parent}}", "child:v1"]);
    assert_eq!(r.stdout.trim(), base, "{}", r.stderr);
    assert_eq!(
        d.ok(&["history", "-q", "--no-trunc", "child:v1"]),
        format!("{child}\n{base}")
    );
    // Loading an image again without its parent keeps the link it has.
    d.ok(&["load", "-i", alone.to_str().unwrap()]);
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Parent}}", "child:v1"]),
        base
    );
}

/// Names of a tar's entries (PAX and prefix names resolved) and the magic of its first header.
fn tar_names(data: &[u8]) -> (Vec<String>, Vec<u8>) {
    let mut archive = tar::Archive::new(data);
    let names = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    (names, data[257..265].to_vec())
}

#[test]
fn cp_and_export_write_ustar_headers_with_pax_for_long_names() {
    let d = Daemon::start();
    let long = "c".repeat(120);
    let script = format!(
        "mkdir -p /t/{dir} && echo x > /t/{dir}/f && echo y > /t/{long}",
        dir = "d".repeat(100)
    );
    d.ok(&["run", "--name", "named", "busybox", "sh", "-c", &script]);
    let split = format!("t/{}/f", "d".repeat(100));
    let long_path = format!("t/{long}");

    let cp = d.berth_cmd(&["cp", "named:/t", "-"]).output().unwrap();
    assert!(
        cp.status.success(),
        "{}",
        String::from_utf8_lossy(&cp.stderr)
    );
    let (names, magic) = tar_names(&cp.stdout);
    // Go's archive/tar (Docker's) writes POSIX ustar, not GNU's "ustar  \0".
    assert_eq!(magic, b"ustar\x0000");
    assert!(
        names.contains(&split) && names.contains(&long_path),
        "{names:?}"
    );
    assert!(
        !cp.stdout.windows(13).any(|w| w == b"././@LongLink"),
        "no GNU long names"
    );

    let export = d.berth_cmd(&["export", "named"]).output().unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let (names, magic) = tar_names(&export.stdout);
    assert_eq!(magic, b"ustar\x0000");
    assert!(
        names.contains(&split) && names.contains(&long_path),
        "{names:?}"
    );
    assert!(
        !export.stdout.windows(13).any(|w| w == b"././@LongLink"),
        "no GNU long names"
    );

    // The docker CLI takes the archive back apart.
    let tmp = TempDir::new();
    let r = d.docker(&["cp", "named:/t", tmp.path().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(&long_path)).unwrap(),
        "y\n"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join(&split)).unwrap(),
        "x\n"
    );
}

/// `--format` templates that do not parse or do not fit the data fail as the docker CLI
/// (20.10) fails on the same daemon: same exit code, same (empty) output, same message;
/// and table headers are docker's, `{{.Label "k"}}` titled `k`.
#[test]
fn template_errors_and_headers_match_the_docker_cli() {
    let d = Daemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "tpl",
        "-l",
        "com.example.my-key=1",
        "busybox",
        "sleep",
        "300",
    ]);
    d.ok(&["volume", "create", "tplv"]);
    d.ok(&["network", "create", "tpln"]);
    let same = |args: &[&str]| {
        let (b, k) = (d.berth(args), d.docker(args));
        // The two runs may straddle a second: "Up 13 seconds" then "Up 14 seconds".
        let (b_out, k_out) = (blur_seconds(&b.stdout), blur_seconds(&k.stdout));
        assert_eq!(
            (b.code, &b_out, &b.stderr),
            (k.code, &k_out, &k.stderr),
            "berth {args:?} (left) differs from docker (right)"
        );
        b
    };
    let commands: [&[&str]; 12] = [
        &["ps"],
        &["images"],
        &["network", "ls"],
        &["volume", "ls"],
        &["history", "busybox"],
        &["stats", "--no-stream"],
        &["events", "--since", "0", "--until", "1"],
        &["inspect", "tpl"],
        &["image", "inspect", "busybox"],
        &["network", "inspect", "tpln"],
        &["volume", "inspect", "tplv"],
        &["inspect", "tpl", "nosuch"],
    ];
    let formats = [
        "{{.Nope",
        "{{.Nope}}",
        "table {{.Nope}}",
        "{{.Name}} {{json .Nope}}",
        "{{nofunc .}}",
        "{{if .ID}}x",
        "{{end}}",
        "a\nb {{.Nope}}",
        "{{.ID.X}}",
        "{{json}}",
    ];
    for cmd in commands {
        for f in formats {
            let mut args = cmd.to_vec();
            args.extend(["--format", f]);
            let r = same(&args);
            assert_ne!(r.code, 0, "{args:?} should fail");
        }
    }
    // The messages themselves, as docker prints them.
    let r = same(&["images", "--format", "{{.Nope"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "template parsing error: template: :1: unclosed action\n")
    );
    let r = same(&["ps", "--format", "table {{.Nope}}"]);
    assert_eq!(
        r.stderr,
        "failed to execute template: template: :1:8: executing \"\" at <.Nope>: \
         can't evaluate field Nope in type *formatter.ContainerContext\n"
    );
    let r = same(&["inspect", "-f", "{{.Nope}}", "tpl"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, "\n"));
    assert!(
        r.stderr.contains("map has no entry for key \"Nope\""),
        "{}",
        r.stderr
    );
    assert_eq!(same(&["inspect", "-f", "{{.Nope", "tpl"]).code, 64);
    assert_eq!(same(&["events", "--format", "{{.Nope}}"]).code, 64);
    // A key missing from a Go map is no error.
    assert_eq!(
        same(&["inspect", "-f", "{{.Config.Labels.zz}}", "tpl"]).stdout,
        "<no value>\n"
    );

    // Headers: the row template run on docker's titles.
    let headers = [
        "table {{.ID}}\\t{{.Label \"com.example.my-key\"}}\\t{{.Names}}",
        "table {{.Names}}\\t{{upper .Names}}\\t{{json .Names}}\\t{{.Names | lower}}",
        "table {{.Names}} x {{if .Names}}y{{end}} z",
        "table {{.Names}}\\t{{json .}}",
        "table{{.Names}}",
        "table {{\"lit\"}}\\t{{.Names}}\\t{{.State}}\\t{{.Mounts}}\\t{{.Networks}}\\t{{.LocalVolumes}}",
    ];
    for f in headers {
        same(&["ps", "--format", f]);
    }
    let header = |args: &[&str]| same(args).stdout.lines().next().unwrap_or("").to_string();
    assert_eq!(
        header(&[
            "ps",
            "--format",
            "table {{.ID}}\\t{{.Label \"com.example.my-key\"}}"
        ]),
        "CONTAINER ID   my key"
    );
    for (cmd, f) in [
        (&["images"][..], "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.Digest}}\\t{{.CreatedSince}}\\t{{.CreatedAt}}\\t{{.Size}}\\t{{.VirtualSize}}\\t{{.SharedSize}}\\t{{.UniqueSize}}\\t{{.Containers}}"),
        (&["network", "ls"][..], "table {{.ID}}\\t{{.Name}}\\t{{.Driver}}\\t{{.Scope}}\\t{{.IPv6}}\\t{{.Internal}}\\t{{.Labels}}\\t{{.CreatedAt}}\\t{{.Label \"k\"}}"),
        (&["volume", "ls"][..], "table {{.Name}}\\t{{.Driver}}\\t{{.Scope}}\\t{{.Mountpoint}}\\t{{.Labels}}\\t{{.Links}}\\t{{.Size}}\\t{{.Label \"a.b-c_d\"}}"),
        (&["history", "busybox"][..], "table {{.ID}}\\t{{.CreatedSince}}\\t{{.CreatedBy}}\\t{{.Size}}\\t{{.Comment}}\\t{{.CreatedAt}}"),
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--format", f]);
        header(&args);
    }

    // Variables, as docker's documentation uses them.
    for f in [
        "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}",
        "{{$name := .Name}}{{with .State}}{{$name}} {{$.Id}} {{.Running}}{{end}}",
        "{{$v}}",
    ] {
        same(&["inspect", "-f", f, "tpl"]);
    }

    // Events: Go's field names (`.ID`, `.Status`) and Go's JSON of the message.
    let server_version = d.ok(&["version", "--format", "{{.Server.Version}}"]);
    assert!(!server_version.is_empty());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let r = same(&[
        "events",
        "--since",
        "0",
        "--until",
        &now,
        "--format",
        "{{.ID}}|{{.Status}}|{{.From}}|{{.Type}}|{{.Action}}|{{.Scope}}|{{.Time}} {{json .}}",
    ]);
    assert!(r.stdout.contains("|container|start|local|"), "{}", r.stdout);
    same(&[
        "events",
        "--since",
        "0",
        "--until",
        "1",
        "--format",
        "{{.Actor.Nope}}",
    ]);

    // version --format: fields, Go names for JSON's `ApiVersion`, and errors.
    for f in [
        "{{.Server.APIVersion}}|{{.Client.APIVersion}}|{{.Server.MinAPIVersion}}|{{.Client.Context}}",
        "{{json .Server}}",
        "{{.Nope",
        "{{.Nope}}",
        "x{{.Server.Nope}}y",
        "{{range .Server.Components}}{{.Name}}={{.Version}} {{end}}",
    ] {
        same(&["version", "--format", f]);
    }
    d.ok(&["rm", "-f", "tpl"]);
}

/// `text` with every count of seconds ("13 seconds") replaced by "N seconds".
fn blur_seconds(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let digits = rest[start..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len(), |n| start + n);
        out.push_str(&rest[..start]);
        if rest[digits..].starts_with(" second") {
            out.push('N');
        } else {
            out.push_str(&rest[start..digits]);
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}
