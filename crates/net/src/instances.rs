//! A host-wide registry of berthd instances' kernel objects (`/run/berth-net/<table>`: the
//! exec root, then one bridge per line). A berthd killed without cleaning up leaves its
//! bridges, table and FORWARD rules behind; once its exec root is gone too (a test's
//! temporary directory, say) nobody can take them over, so the next berthd removes them.
//! An instance whose exec root remains is left alone: a berthd may come back for it.

use std::path::{Path, PathBuf};

const DIR: &str = "/run/berth-net";

fn entry(table: &str) -> PathBuf {
    Path::new(DIR).join(table)
}

/// Records (replaces) what instance `table` owns.
pub fn record(table: &str, exec_root: &Path, bridges: &[String]) -> std::io::Result<()> {
    std::fs::create_dir_all(DIR)?;
    let mut text = format!("{}\n", exec_root.display());
    for b in bridges {
        text.push_str(b);
        text.push('\n');
    }
    let tmp = entry(&format!(".{table}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, entry(table))
}

/// Forgets an instance that cleaned up after itself.
pub fn forget(table: &str) {
    let _ = std::fs::remove_file(entry(table));
}

/// Removes the objects of instances whose exec root no longer exists; callers hold
/// [`crate::bridge::host_lock`]. Returns the tables removed.
pub fn collect_stale() -> Vec<String> {
    let mut removed = Vec::new();
    for e in std::fs::read_dir(DIR).into_iter().flatten().flatten() {
        let table = e.file_name().to_string_lossy().to_string();
        if table.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let mut lines = text.lines();
        let Some(root) = lines.next() else { continue };
        if Path::new(root).exists() {
            continue;
        }
        let _ = crate::nft::delete_table(&table);
        let _ = crate::fastpath::delete(&table);
        let _ = crate::nft::sync_filter_forward(&table, &[]);
        for bridge in lines.filter(|l| !l.is_empty()) {
            let _ = crate::bridge::remove_link(bridge);
        }
        forget(&table);
        removed.push(table);
    }
    removed
}
