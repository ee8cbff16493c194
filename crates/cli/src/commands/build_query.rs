//! `berth build`'s flags as the docker CLI checks them and turns them into the `POST /build`
//! query (`imageBuildOptionsToQuery`), with docker's error messages.

use std::collections::BTreeMap;

use crate::client;
use crate::commands::build::BuildArgs;
use crate::commands::create::{flag_error, host_env, parse_ulimit};
use crate::commands::network_opts::validate_extra_host;
use crate::commands::run::parse_go_bool;
use crate::commands::Failure;
use crate::format::ram_in_bytes;

/// The build request's query, from the flags (docker's `imageBuildOptionsToQuery`, keys
/// sorted as Go's `url.Values.Encode` sorts them).
#[derive(Debug)]
pub struct Query {
    pairs: Vec<(&'static str, String)>,
}

impl Query {
    /// `?k=v&…`, plus `extra` (berth's `context=`).
    pub fn encode(&self, extra: &[(&'static str, String)]) -> String {
        let mut all: Vec<&(&str, String)> = self.pairs.iter().chain(extra).collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        let parts: Vec<String> = all
            .iter()
            .map(|(k, v)| format!("{k}={}", client::enc(v)))
            .collect();
        format!("?{}", parts.join("&"))
    }
}

fn parse_bool(cmd: &str, v: &Option<String>, default: bool, flag: &str) -> Result<bool, Failure> {
    match v {
        None => Ok(default),
        Some(s) => parse_go_bool(s).map_err(|e| flag_error(cmd, s, flag, &e)),
    }
}

fn parse_int(cmd: &str, v: &Option<String>, flag: &str) -> Result<i64, Failure> {
    match v {
        None => Ok(0),
        Some(s) => s.parse::<i64>().map_err(|_| {
            flag_error(
                cmd,
                s,
                flag,
                &format!("strconv.ParseInt: parsing \"{s}\": invalid syntax"),
            )
        }),
    }
}

fn parse_bytes(
    cmd: &str,
    v: &Option<String>,
    flag: &str,
    allow_minus_one: bool,
) -> Result<i64, Failure> {
    match v {
        None => Ok(0),
        Some(s) if allow_minus_one && s == "-1" => Ok(-1),
        Some(s) => ram_in_bytes(s).map_err(|e| flag_error(cmd, s, flag, &e)),
    }
}

/// docker's `ValidateEnv` for `--build-arg`: `K=V` as is, a bare `K` takes our value, or
/// stays valueless (null) when we have none.
pub fn build_args(
    cmd: &str,
    items: &[String],
) -> Result<BTreeMap<String, Option<String>>, Failure> {
    let mut out = BTreeMap::new();
    for item in items {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (item.as_str(), host_env(item)),
        };
        if k.is_empty() {
            return Err(flag_error(
                cmd,
                item,
                "--build-arg",
                &format!("invalid environment variable: {item}"),
            ));
        }
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

/// docker's `ValidateLabel`: a name is required and has no blanks; `k` alone is `k=""`.
pub fn labels(cmd: &str, items: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    for item in items {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        let key = k.trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']);
        if key.is_empty() {
            return Err(flag_error(
                cmd,
                item,
                "--label",
                &format!("invalid label '{item}': empty name"),
            ));
        }
        if key.contains(char::is_whitespace) {
            return Err(flag_error(
                cmd,
                item,
                "--label",
                &format!("label '{key}' contains whitespaces"),
            ));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// docker's `validateTag` (reference.ParseNormalizedNamed), with its messages.
fn check_tag(tag: &str) -> Result<(), String> {
    let invalid = || "invalid reference format".to_string();
    let (name, tag_part) = match tag.rfind(':') {
        Some(i) if !tag[i + 1..].contains('/') => (&tag[..i], Some(&tag[i + 1..])),
        _ => (tag, None),
    };
    if let Some(t) = tag_part {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(invalid());
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let domain = parts.remove(0);
        if domain.is_empty()
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        {
            return Err(invalid());
        }
    }
    if name.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return Err(invalid());
    }
    if parts
        .iter()
        .any(|p| p.chars().any(|c| c.is_ascii_uppercase()))
    {
        return Err("invalid reference format: repository name must be lowercase".into());
    }
    for p in &parts {
        // path-component: [a-z0-9]+ (separator [a-z0-9]+)*, separators `.`, `_`, `__`, `-+`.
        let bytes = p.as_bytes();
        if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
            return Err(invalid());
        }
        let mut run = String::new();
        for c in p.chars() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                if !(run.is_empty()
                    || run == "."
                    || run == "_"
                    || run == "__"
                    || run.chars().all(|r| r == '-'))
                {
                    return Err(invalid());
                }
                run.clear();
            } else if ".-_".contains(c) {
                run.push(c);
            } else {
                return Err(invalid());
            }
        }
    }
    if name.len() > 255 {
        return Err(
            "invalid reference format: repository name must not be more than 255 characters".into(),
        );
    }
    Ok(())
}

/// The flags checked and turned into the request query, in docker's order of checks.
pub fn query_from_flags(a: &BuildArgs) -> Result<Query, Failure> {
    let cmd = a.command;
    for t in &a.tag {
        check_tag(t).map_err(|e| flag_error(cmd, t, "-t, --tag", &e))?;
    }
    let buildargs = build_args(cmd, &a.build_arg)?;
    let labels = labels(cmd, &a.label)?;
    for h in &a.add_host {
        validate_extra_host(h).map_err(|e| flag_error(cmd, h, "--add-host", &e))?;
    }
    // As docker's ulimit option: one value per name, the last one given wins.
    let mut ulimits = BTreeMap::new();
    for u in &a.ulimit {
        let l = parse_ulimit(u).map_err(|e| flag_error(cmd, u, "--ulimit", &e))?;
        ulimits.insert(l.name.clone().unwrap_or_default(), l);
    }
    let memory = parse_bytes(cmd, &a.memory, "-m, --memory", false)?;
    let memswap = parse_bytes(cmd, &a.memory_swap, "--memory-swap", true)?;
    let shmsize = parse_bytes(cmd, &a.shm_size, "--shm-size", false)?;
    let cpushares = parse_int(cmd, &a.cpu_shares, "-c, --cpu-shares")?;
    let cpuperiod = parse_int(cmd, &a.cpu_period, "--cpu-period")?;
    let cpuquota = parse_int(cmd, &a.cpu_quota, "--cpu-quota")?;
    let rm = parse_bool(cmd, &a.rm, true, "--rm")?;
    parse_bool(
        cmd,
        &a.disable_content_trust,
        true,
        "--disable-content-trust",
    )?;

    let json = |v: serde_json::Value| v.to_string();
    let mut pairs: Vec<(&'static str, String)> = vec![
        (
            "buildargs",
            json(serde_json::to_value(&buildargs).unwrap_or_default()),
        ),
        (
            "cachefrom",
            json(serde_json::to_value(&a.cache_from).unwrap_or_default()),
        ),
        ("cgroupparent", a.cgroup_parent.clone().unwrap_or_default()),
        ("cpuperiod", cpuperiod.to_string()),
        ("cpuquota", cpuquota.to_string()),
        ("cpusetcpus", a.cpuset_cpus.clone().unwrap_or_default()),
        ("cpusetmems", a.cpuset_mems.clone().unwrap_or_default()),
        ("cpushares", cpushares.to_string()),
        (
            "labels",
            json(serde_json::to_value(&labels).unwrap_or_default()),
        ),
        ("memory", memory.to_string()),
        ("memswap", memswap.to_string()),
        ("networkmode", a.network.clone()),
        ("rm", if rm { "1" } else { "0" }.to_string()),
        ("shmsize", shmsize.to_string()),
        ("target", a.target.clone().unwrap_or_default()),
        (
            "ulimits",
            if ulimits.is_empty() {
                "null".to_string()
            } else {
                json(
                    serde_json::to_value(ulimits.into_values().collect::<Vec<_>>())
                        .unwrap_or_default(),
                )
            },
        ),
        ("version", "1".to_string()),
    ];
    for t in &a.tag {
        pairs.push(("t", t.clone()));
    }
    for h in &a.add_host {
        pairs.push(("extrahosts", h.clone()));
    }
    for s in &a.security_opt {
        pairs.push(("securityopt", s.clone()));
    }
    let flags = [
        (a.quiet, "q"),
        (a.no_cache, "nocache"),
        (a.force_rm, "forcerm"),
        (a.pull, "pull"),
        (a.squash, "squash"),
    ];
    for (on, key) in flags {
        if on {
            pairs.push((key, "1".to_string()));
        }
    }
    if let Some(i) = a
        .isolation
        .as_deref()
        .filter(|i| !i.is_empty() && *i != "default")
    {
        pairs.push(("isolation", i.to_string()));
    }
    if let Some(p) = a.platform.as_deref().filter(|p| !p.is_empty()) {
        pairs.push(("platform", p.to_lowercase()));
    }
    Ok(Query { pairs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        b: BuildArgs,
    }

    fn parse(args: &[&str]) -> BuildArgs {
        P::try_parse_from(std::iter::once("build").chain(args.iter().copied()))
            .unwrap()
            .b
    }

    #[test]
    fn query_matches_the_docker_cli() {
        // build-transcripts.md: `-t h6test/a:1 -t h6test/a:2 --build-arg V=7 --label lab=1`.
        let a = parse(&[
            "-t",
            "h6test/a:1",
            "-t",
            "h6test/a:2",
            "--build-arg",
            "V=7",
            "--label",
            "lab=1",
            ".",
        ]);
        let q = query_from_flags(&a)
            .unwrap()
            .encode(&[("dockerfile", "Dockerfile".into())]);
        assert_eq!(q, "?buildargs=%7B%22V%22%3A%227%22%7D&cachefrom=%5B%5D&cgroupparent=&cpuperiod=0&cpuquota=0&cpusetcpus=&cpusetmems=&cpushares=0&dockerfile=Dockerfile&labels=%7B%22lab%22%3A%221%22%7D&memory=0&memswap=0&networkmode=default&rm=1&shmsize=0&t=h6test%2Fa%3A1&t=h6test%2Fa%3A2&target=&ulimits=null&version=1");
        let a = parse(&[
            "-q",
            "--no-cache",
            "--pull",
            "--network",
            "host",
            "--cache-from",
            "busybox",
            "--force-rm",
            ".",
        ]);
        let q = query_from_flags(&a).unwrap().encode(&[]);
        for part in [
            "cachefrom=%5B%22busybox%22%5D",
            "forcerm=1",
            "networkmode=host",
            "nocache=1",
            "pull=1",
            "q=1",
        ] {
            assert!(q.contains(part), "{part} in {q}");
        }
    }

    #[test]
    fn flag_errors_are_dockers() {
        let msg = |args: &[&str]| query_from_flags(&parse(args)).unwrap_err().message;
        // pflag booleans never take the next word as their value.
        let a = parse(&["--rm", "--disable-content-trust", "."]);
        assert_eq!(
            (a.rm.as_deref(), a.context.as_slice()),
            (Some("true"), &[".".to_string()][..])
        );
        assert!(query_from_flags(&parse(&["--rm=false", "."]))
            .unwrap()
            .pairs
            .contains(&("rm", "0".into())));
        assert_eq!(
            msg(&["--build-arg", "=x", "."]),
            "invalid argument \"=x\" for \"--build-arg\" flag: invalid environment variable: =x\nSee 'berth build --help'."
        );
        assert!(msg(&["--label", "=x", "."]).contains("invalid label '=x': empty name"));
        assert!(msg(&["-t", "BAD:x", "."])
            .contains("invalid reference format: repository name must be lowercase"));
        assert!(msg(&["-t", "a:b:c", "."])
            .contains("\"a:b:c\" for \"-t, --tag\" flag: invalid reference format\n"));
        assert!(msg(&["-m", "1x", "."]).contains("for \"-m, --memory\" flag: invalid size: '1x'"));
        assert!(msg(&["--ulimit", "nofile", "."]).contains("invalid ulimit argument: nofile"));
        assert!(msg(&["-c", "x", "."]).contains("strconv.ParseInt: parsing \"x\": invalid syntax"));
        assert!(msg(&["--add-host", "bad", "."]).contains("bad format for add-host: \"bad\""));
        for ok in [
            "busybox",
            "h6test/a:1",
            "localhost:5000/x/y:tag",
            "a__b",
            "a-----b:v1.0",
        ] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["a:", "-a", "a..b", "a/", ":t", "a@b"] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn build_args_and_labels() {
        std::env::set_var("H2_TEST_BUILD_ARG", "from-env");
        let m = build_args(
            "build",
            &[
                "A=1".into(),
                "H2_TEST_BUILD_ARG".into(),
                "H2_UNSET_XYZ".into(),
            ],
        )
        .unwrap();
        assert_eq!(m["A"].as_deref(), Some("1"));
        assert_eq!(m["H2_TEST_BUILD_ARG"].as_deref(), Some("from-env"));
        assert_eq!(m["H2_UNSET_XYZ"], None);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"A":"1","H2_TEST_BUILD_ARG":"from-env","H2_UNSET_XYZ":null}"#
        );
        assert_eq!(labels("build", &["foo".into()]).unwrap()["foo"], "");
    }
}
