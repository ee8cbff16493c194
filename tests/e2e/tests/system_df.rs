//! `system df` measured on disk, and volume prune by API version, with both CLIs.

use berth_e2e::Daemon;

/// The cells of the line of `table` that starts with `first`.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .find(|l| l.starts_with(first))
        .unwrap_or_else(|| panic!("no {first:?} line in:\n{table}"));
    line.split("   ").map(str::trim).filter(|c| !c.is_empty()).collect()
}

/// A table's cells, line by line, without the ones that depend on the clock.
fn timeless(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split("   ").map(str::trim).filter(|c| !c.is_empty() && !c.ends_with(" ago")).map(String::from).collect())
        .collect()
}

fn df_json(d: &Daemon) -> serde_json::Value {
    let r = d.docker(&["system", "df", "-v", "--format", "{{json .}}"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[test]
fn system_df_reports_what_is_on_disk() {
    let d = Daemon::start();
    d.ok(&[
        "run", "--name", "filler", "-v", "dfdata:/data", "busybox", "sh", "-c",
        "head -c 3000000 /dev/zero > /big; head -c 2000000 /dev/zero > /data/f",
    ]);
    // `images`' SIZE column (berth's has no --format; docker's reads the same API).
    let image_size = d.docker(&["images", "--format", "{{.Size}}", "busybox"]).stdout.trim().to_string();
    let images_table = d.ok(&["images"]);
    assert_eq!(row(&images_table, "busybox")[4], image_size, "{images_table}");

    // docker's reading of the answer.
    let v = df_json(&d);
    let images = v["Images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{v}");
    // df counts what the image takes on disk: its snapshots and the layer tars berth keeps
    // besides them (engine/disk_usage.rs); `images` shows the content size, as Docker does.
    let on_disk = images[0]["Size"].as_str().unwrap().to_string();
    assert_ne!(on_disk, image_size);
    assert_eq!(images[0]["Containers"], "1");
    assert_eq!(images[0]["SharedSize"], "0B");
    let containers = v["Containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{v}");
    assert_eq!(containers[0]["Size"], "3MB");
    assert_eq!(containers[0]["LocalVolumes"], "1");
    assert_eq!(containers[0]["Names"], "filler");
    let volumes = v["Volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 1, "{v}");
    assert_eq!((volumes[0]["Name"].as_str(), volumes[0]["Size"].as_str(), volumes[0]["Links"].as_str()), (Some("dfdata"), Some("2MB"), Some("1")));

    // berth's tables, cell by cell.
    let summary = d.ok(&["system", "df"]);
    assert!(summary.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"), "{summary}");
    assert_eq!(row(&summary, "Containers"), ["Containers", "1", "0", "3MB", "3MB (100%)"]);
    assert_eq!(row(&summary, "Local Volumes"), ["Local Volumes", "1", "1", "2MB", "0B (0%)"]);
    assert_eq!(row(&summary, "Build Cache"), ["Build Cache", "0", "0", "0B", "0B"]);
    let images_row = row(&summary, "Images");
    assert_eq!(&images_row[..3], ["Images", "1", "1"]);
    // The only image is in use: nothing reclaimable.
    assert_eq!(images_row[4], "0B (0%)");

    let verbose = d.ok(&["system", "df", "-v"]);
    let img = row(&verbose, "busybox ");
    assert_eq!((img[0], img[1], img[5], img[7]), ("busybox", "latest", "0B", "1"), "{verbose}");
    // Its SIZE (4 digits, docker 20.10's `{{.VirtualSize}}`) is checked against the docker
    // CLI's table below.
    let c = row(&verbose, &d.ok(&["ps", "-aq", "-f", "name=filler"]));
    assert_eq!((c[1], c[3], c[4], c[c.len() - 1]), ("busybox", "1", "3MB", "filler"), "{verbose}");
    // Docker quotes an argument that holds a space in the command it lists.
    assert_eq!(c[2], "\"sh -c 'head -c 3000…\"", "{verbose}");
    assert_eq!(row(&verbose, "dfdata"), ["dfdata", "1", "2MB"]);
    assert!(verbose.ends_with("Build cache usage: 0B\n\nCACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED"), "{verbose}");

    // The same tables from the real docker CLI.
    let docker = d.docker(&["system", "df"]).stdout;
    assert_eq!(docker.trim(), summary, "docker:\n{docker}\nberth:\n{summary}");
    // CREATED and STATUS say how long ago, which may tick between the two calls.
    let docker = d.docker(&["system", "df", "-v"]).stdout;
    // The docker CLI the tests drive is 20.10's: every section the same, images' SIZE too.
    assert_eq!(timeless(docker.trim()), timeless(&verbose), "docker:\n{docker}\nberth:\n{verbose}");

    // Once the container is gone its layer is reclaimed and the volume unused.
    d.ok(&["rm", "filler"]);
    let summary = d.ok(&["system", "df"]);
    assert_eq!(row(&summary, "Containers"), ["Containers", "0", "0", "0B", "0B"]);
    assert_eq!(row(&summary, "Local Volumes"), ["Local Volumes", "1", "0", "2MB", "2MB (100%)"]);
    assert_eq!(row(&summary, "Images")[4], format!("{} (100%)", row(&summary, "Images")[3]));
}

#[test]
fn volume_prune_follows_the_api_version() {
    let d = Daemon::start();
    d.ok(&["volume", "create", "named"]);
    d.ok(&["create", "--name", "anon-holder", "-v", "/scratch", "busybox", "true"]);
    let anon = d.ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "anon-holder"]);
    d.ok(&["rm", "anon-holder"]);

    // berth's prune spares named volumes; -a takes them.
    let out = d.ok(&["volume", "prune", "-f"]);
    assert!(out.starts_with(&format!("Deleted Volumes:\n{anon}\n")), "{out}");
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "named");
    d.ok(&["volume", "create", "named2"]);
    let out = d.ok(&["volume", "prune", "-f", "-a"]);
    assert!(out.starts_with("Deleted Volumes:\nnamed\nnamed2\n"), "{out}");
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");

    // docker at API 1.41 prunes named volumes too (and refuses -a), as against Docker 20.10.
    d.ok(&["volume", "create", "named3"]);
    d.ok(&["volume", "create", "kept"]);
    d.ok(&["create", "--name", "user", "-v", "kept:/k", "busybox", "true"]);
    let r = d.docker(&["volume", "prune", "-f"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("Deleted Volumes:\nnamed3\n"), "{}", r.stdout);
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "kept");
    let r = d.docker(&["volume", "prune", "-f", "-a"]);
    assert_ne!(r.code, 0, "{}", r.stdout);

    // A request without a version prefix is taken at the advertised version (1.41).
    let r = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", "--unix-socket"])
        .arg(&d.socket)
        .arg("http://berth/volumes/prune")
        .output()
        .expect("run curl");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "kept");
    d.ok(&["rm", "user"]);
    let r = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", "--unix-socket"])
        .arg(&d.socket)
        .arg("http://berth/volumes/prune")
        .output()
        .expect("run curl");
    let body = String::from_utf8_lossy(&r.stdout);
    assert!(body.contains("\"VolumesDeleted\":[\"kept\"]"), "{body}");
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
}
