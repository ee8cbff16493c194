//! The `run`/`create` flags about a container's privileges: `--cap-add`, `--cap-drop` and
//! `--security-opt`, turned into the create body as docker's CLI does (capabilities
//! normalized, a seccomp profile file sent as its JSON, `systempaths=unconfined` kept
//! client-side as empty masked and read-only path lists).

use berth_api::models::ContainerCreateBody;
use clap::Args;

use crate::commands::Failure;

#[derive(Debug, Clone, Default, Args)]
pub struct SecurityOpts {
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Security Options
    #[arg(long = "security-opt", value_name = "list")]
    pub security_opt: Vec<String>,
}

impl SecurityOpts {
    /// Fills the body's `CapAdd`, `CapDrop`, `SecurityOpt`, `MaskedPaths` and `ReadonlyPaths`.
    pub fn apply(&self, cmd: &str, body: &mut ContainerCreateBody) -> Result<(), Failure> {
        let report = |why: String| {
            // docker's `reportError`: one trailing period, then the help hint.
            let why = why.trim_end_matches('.');
            Failure::new(125, format!("berth: {why}.\nSee 'berth {cmd} --help'."))
        };
        let opts = parse_security_opts(&self.security_opt, &|path| std::fs::read_to_string(path))
            .map_err(report)?;
        let (opts, unconfined) = split_system_paths(opts);
        let hc = body.host_config.get_or_insert_with(Default::default);
        if !self.cap_add.is_empty() || !self.cap_drop.is_empty() {
            let (add, drop) = effective_cap_add_drop(&self.cap_add, &self.cap_drop);
            hc.cap_add = (!add.is_empty()).then_some(add);
            hc.cap_drop = (!drop.is_empty()).then_some(drop);
        }
        hc.security_opt = (!opts.is_empty()).then_some(opts);
        if unconfined {
            hc.masked_paths = Some(Vec::new());
            hc.readonly_paths = Some(Vec::new());
        }
        Ok(())
    }
}

/// docker's `NormalizeCapability`: trimmed, upper case, `CAP_` added except to `ALL`.
fn normalize_capability(cap: &str) -> String {
    let cap = cap.trim().to_ascii_uppercase();
    if cap == "ALL" || cap.starts_with("CAP_") {
        cap
    } else {
        format!("CAP_{cap}")
    }
}

/// docker's `EffectiveCapAddCapDrop`: normalized, deduplicated and sorted; `ALL` trumps the
/// other names on its side, and a capability both added and dropped is only added.
fn effective_cap_add_drop(add: &[String], drop: &[String]) -> (Vec<String>, Vec<String>) {
    let set = |list: &[String]| -> std::collections::BTreeSet<String> {
        let names: std::collections::BTreeSet<String> =
            list.iter().map(|c| normalize_capability(c)).collect();
        match names.contains("ALL") {
            true => ["ALL".to_string()].into(),
            false => names,
        }
    };
    let (add, mut drop) = (set(add), set(drop));
    drop.retain(|c| !add.contains(c));
    (add.into_iter().collect(), drop.into_iter().collect())
}

/// docker 20.10's `parseSecurityOpts`: each option must be `key=value` or `key:value` (bare
/// `no-new-privileges` aside); `seccomp=<file>` is replaced by the file's compacted JSON.
fn parse_security_opts(
    opts: &[String],
    read: &dyn Fn(&str) -> std::io::Result<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(opts.len());
    for opt in opts {
        let split = opt.split_once('=').or_else(|| match opt.as_str() {
            "no-new-privileges" => None,
            _ => opt.split_once(':'),
        });
        if split.is_none() && opt != "no-new-privileges" {
            return Err(format!(
                "Invalid --security-opt: {}",
                crate::commands::ps::go_quote(opt)
            ));
        }
        match split {
            Some(("seccomp", path)) if path != "unconfined" => {
                let text = read(path).map_err(|e| {
                    format!(
                        "opening seccomp profile ({path}) failed: open {path}: {}",
                        crate::commands::create::io_reason(&e)
                    )
                })?;
                let json = compact_json(&text).map_err(|e| {
                    format!("compacting json for seccomp profile ({path}) failed: {e}")
                })?;
                out.push(format!("seccomp={json}"));
            }
            _ => out.push(opt.clone()),
        }
    }
    Ok(out)
}

/// docker's `parseSystemPaths`: `systempaths=unconfined` is removed and reported.
fn split_system_paths(opts: Vec<String>) -> (Vec<String>, bool) {
    let before = opts.len();
    let kept: Vec<String> = opts
        .into_iter()
        .filter(|o| o != "systempaths=unconfined")
        .collect();
    let unconfined = kept.len() != before;
    (kept, unconfined)
}

/// Go's `json.Compact`: the text with the whitespace between tokens removed, everything else
/// (key order, number spelling) as written; invalid JSON is an error.
fn compact_json(text: &str) -> Result<String, String> {
    serde_json::from_str::<serde_json::Value>(text).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn capabilities_like_docker_cli() {
        let (add, drop) = effective_cap_add_drop(
            &strings(&["sys_admin", " net_admin", "CAP_SYS_ADMIN"]),
            &strings(&["chown", "SYS_ADMIN"]),
        );
        assert_eq!(add, ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]);
        assert_eq!(drop, ["CAP_CHOWN"]);
        let (add, drop) =
            effective_cap_add_drop(&strings(&["all", "kill"]), &strings(&["ALL", "chown"]));
        assert_eq!((add, drop), (strings(&["ALL"]), vec![]));
        // CAP_ALL is not the magic value: sent as is, for the daemon to refuse.
        assert_eq!(
            effective_cap_add_drop(&strings(&["cap_all"]), &[]).0,
            ["CAP_ALL"]
        );
    }

    #[test]
    fn security_opts_like_docker_cli() {
        let files = |path: &str| {
            match path {
            "/p.json" => Ok("{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [ {\"names\": [\"a b\"]} ]\n}\n".to_string()),
            "/bad.json" => Ok("{nope".to_string()),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
        };
        let parse = |v: &[&str]| parse_security_opts(&strings(v), &files);
        assert_eq!(
            parse(&["seccomp=/p.json"]).unwrap(),
            [r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a b"]}]}"#]
        );
        assert_eq!(
            parse(&["seccomp:unconfined", "no-new-privileges", "label=disable"])
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            parse(&["foo"]).unwrap_err(),
            "Invalid --security-opt: \"foo\""
        );
        assert_eq!(
            parse(&["seccomp=/nope.json"]).unwrap_err(),
            "opening seccomp profile (/nope.json) failed: open /nope.json: no such file or directory"
        );
        assert!(parse(&["seccomp=/bad.json"])
            .unwrap_err()
            .starts_with("compacting json for seccomp profile (/bad.json) failed: "));
        let (kept, unconfined) =
            split_system_paths(strings(&["systempaths=unconfined", "apparmor=x"]));
        assert_eq!((kept, unconfined), (strings(&["apparmor=x"]), true));
    }
}
