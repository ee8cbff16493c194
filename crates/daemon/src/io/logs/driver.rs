//! The log driver a container uses (`HostConfig.LogConfig`): dockerd's checks and its merge
//! with the daemon's defaults at create time, and what the shim needs to write the log.
//!
//! berth has `json-file` (rotated by default, unlike Docker's), `local`, `syslog` and `none`.

use crate::state::Record;
use berth_api::models::HostConfigLogConfig;
use berth_runtime::protocol::{LogDriver, SyslogTarget};
use std::collections::{BTreeMap, HashMap};

pub const JSON_FILE: &str = "json-file";
pub const NONE: &str = "none";
pub const LOCAL: &str = "local";
pub const SYSLOG: &str = "syslog";

/// Drivers dockerd has and berth has not: refused by name rather than called unknown.
const DOCKER_ONLY: &[&str] = &[
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
];

/// The options json-file takes (dockerd's list), besides the generic `mode` and `max-buffer-size`.
const JSON_FILE_OPTS: &[&str] = &[
    "max-file",
    "max-size",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];

/// The options the local driver takes (dockerd's `LogOptKeys`).
const LOCAL_OPTS: &[&str] = &["max-file", "max-size", "compress"];

/// The options the syslog driver takes (dockerd's `ValidateLogOpt`).
const SYSLOG_OPTS: &[&str] = &[
    "env",
    "env-regex",
    "labels",
    "labels-regex",
    "syslog-address",
    "syslog-facility",
    "syslog-tls-ca-cert",
    "syslog-tls-cert",
    "syslog-tls-key",
    "syslog-tls-skip-verify",
    "tag",
    "syslog-format",
];

/// dockerd's local driver defaults: 20 MiB files, five in all, the rotated ones compressed.
const LOCAL_MAX_SIZE: u64 = 20 << 20;
const LOCAL_MAX_FILES: u32 = 5;

/// syslog's facility names and numbers.
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The driver when neither the request nor the daemon config names one.
pub fn builtin_default() -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some(JSON_FILE.into()),
        config: Some(HashMap::new()),
    }
}

/// dockerd's merge: a request without a type gets the daemon's; when the types agree, the
/// daemon's options fill the keys the request leaves out. The result is what the container keeps.
pub fn merge(
    requested: Option<&HostConfigLogConfig>,
    default: &HostConfigLogConfig,
) -> HostConfigLogConfig {
    let default_type = default.typ.clone().unwrap_or_else(|| JSON_FILE.into());
    let mut typ = requested.and_then(|r| r.typ.clone()).unwrap_or_default();
    if typ.is_empty() {
        typ = default_type.clone();
    }
    let mut config = requested.and_then(|r| r.config.clone()).unwrap_or_default();
    if typ == default_type {
        for (k, v) in default.config.iter().flatten() {
            config.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    HostConfigLogConfig {
        typ: Some(typ),
        config: Some(config),
    }
}

/// dockerd's create-time checks (driver and option names), then the value checks dockerd
/// only makes when the driver starts: a bad value is refused before anything is created.
pub fn validate(cfg: &HostConfigLogConfig) -> Result<(), String> {
    let typ = cfg.typ.as_deref().unwrap_or(JSON_FILE);
    let empty = HashMap::new();
    let opts = cfg.config.as_ref().unwrap_or(&empty);
    if typ == NONE {
        return Ok(());
    }
    let mode = opts.get("mode").map(String::as_str).unwrap_or("");
    if !matches!(mode, "" | "blocking" | "non-blocking") {
        return Err(format!("logger: logging mode not supported: {mode}"));
    }
    if let Some(size) = opts.get("max-buffer-size") {
        if mode != "non-blocking" {
            return Err(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'".into(),
            );
        }
        parse_size(size, 1024).map_err(|e| format!("error parsing option max-buffer-size: {e}"))?;
    }
    if DOCKER_ONLY.contains(&typ) {
        return Err(format!(
            "berth does not support the {typ} logging driver yet"
        ));
    }
    if typ == LOCAL {
        return validate_local(opts);
    }
    if typ == SYSLOG {
        return validate_syslog(opts);
    }
    if typ != JSON_FILE {
        return Err(format!(
            "error looking up logging plugin {typ}: plugin \"{typ}\" not found"
        ));
    }
    let mut keys: Vec<&String> = opts
        .keys()
        .filter(|k| !matches!(k.as_str(), "mode" | "max-buffer-size"))
        .collect();
    keys.sort();
    if let Some(k) = keys.iter().find(|k| !JSON_FILE_OPTS.contains(&k.as_str())) {
        return Err(format!("unknown log opt '{k}' for json-file log driver"));
    }
    if mode == "non-blocking" {
        // The shim writes each line before reading more; dropping lines instead is not built.
        return Err("berth does not support --log-opt mode=non-blocking yet".into());
    }
    json_file_values(opts)
        .map(|_| ())
        .map_err(|e| format!("failed to initialize logging driver: {e}"))
}

/// The local driver: dockerd checks the option names at create and the values at start
/// (there, wrapped as a failure to initialise the driver).
fn validate_local(opts: &HashMap<String, String>) -> Result<(), String> {
    // `mode` and `max-buffer-size` belong to every driver; dockerd leaves them out here.
    let mut keys: Vec<&String> = opts
        .keys()
        .filter(|k| !matches!(k.as_str(), "mode" | "max-buffer-size"))
        .collect();
    keys.sort();
    if let Some(k) = keys.iter().find(|k| !LOCAL_OPTS.contains(&k.as_str())) {
        return Err(format!("unknown log opt '{k}' for log driver local"));
    }
    if opts.get("mode").map(String::as_str) == Some("non-blocking") {
        return Err("berth does not support --log-opt mode=non-blocking yet".into());
    }
    local_values(opts)
        .map(|_| ())
        .map_err(|e| format!("failed to initialize logging driver: {e}"))
}

/// The local driver's max-size, max-file and compress, with dockerd's defaults and messages.
fn local_values(opts: &HashMap<String, String>) -> Result<(u64, u32, bool), String> {
    let max_size = match opts.get("max-size") {
        Some(s) => {
            parse_size(s, 1000).map_err(|e| format!("invalid value for max-size: {s}: {e}"))?
        }
        None => LOCAL_MAX_SIZE as i64,
    };
    let max_files = match opts.get("max-file") {
        Some(s) => go_atoi(s).map_err(|e| format!("invalid value for max-file: {s}: {e}"))?,
        None => LOCAL_MAX_FILES.into(),
    };
    let compress = match opts.get("compress") {
        Some(s) => {
            go_parse_bool(s).map_err(|e| format!("error reading compress log option: {e}"))?
        }
        None => true,
    };
    if max_size < 0 {
        return Err("max size should be a positive number".into());
    }
    if max_files < 0 {
        return Err("max file count cannot be less than 0".into());
    }
    // max-file=0 keeps one file, as 1 does.
    if compress && max_files <= 1 {
        return Err("compression cannot be enabled when max file count is 1".into());
    }
    Ok((
        max_size as u64,
        u32::try_from(max_files.max(1)).unwrap_or(u32::MAX),
        compress,
    ))
}

/// The syslog driver's create-time checks, in dockerd's order, then its start-time ones.
fn validate_syslog(opts: &HashMap<String, String>) -> Result<(), String> {
    let mut keys: Vec<&String> = opts
        .keys()
        .filter(|k| !matches!(k.as_str(), "mode" | "max-buffer-size"))
        .collect();
    keys.sort();
    if let Some(k) = keys.iter().find(|k| !SYSLOG_OPTS.contains(&k.as_str())) {
        return Err(format!("unknown log opt '{k}' for syslog log driver"));
    }
    let (network, _) =
        syslog_address(opts.get("syslog-address").map(String::as_str).unwrap_or(""))?;
    syslog_facility(
        opts.get("syslog-facility")
            .map(String::as_str)
            .unwrap_or(""),
    )?;
    let format = opts.get("syslog-format").map(String::as_str).unwrap_or("");
    if !matches!(format, "" | "rfc3164" | "rfc5424" | "rfc5424micro") {
        return Err("Invalid syslog format".into());
    }
    let wrap = |e: String| format!("failed to initialize logging driver: {e}");
    if network == "tcp+tls" || opts.keys().any(|k| k.starts_with("syslog-tls-")) {
        return Err("berth does not support syslog over TLS yet".into());
    }
    if opts.get("mode").map(String::as_str) == Some("non-blocking") {
        return Err("berth does not support --log-opt mode=non-blocking yet".into());
    }
    for key in ["labels-regex", "env-regex"] {
        if let Some(re) = opts.get(key).filter(|r| !r.is_empty()) {
            regex::Regex::new(re).map_err(|e| {
                wrap(format!(
                    "error parsing regexp: {}",
                    one_line(&e.to_string())
                ))
            })?;
        }
    }
    if let Some(tag) = opts.get("tag") {
        parse_tag(tag).map_err(wrap)?;
    }
    Ok(())
}

/// dockerd's `parseAddress`: `proto://address`; a socket path must exist, a host without a
/// port gets 514. Empty: the local syslog daemon.
fn syslog_address(address: &str) -> Result<(String, String), String> {
    if address.is_empty() {
        return Ok((String::new(), String::new()));
    }
    let transport = ["tcp://", "tcp+tls://", "udp://", "unix://", "unixgram://"];
    if !transport.iter().any(|p| address.starts_with(p)) {
        return Err(format!(
            "syslog-address should be in form proto://address, got {address}"
        ));
    }
    let (scheme, rest) = address.split_once("://").unwrap_or(("", address));
    if scheme == "unix" || scheme == "unixgram" {
        // url.Parse: the path is what follows the authority (empty for `unix:///x`).
        let path = match rest.find('/') {
            Some(i) => &rest[i..],
            None => "",
        };
        std::fs::metadata(path).map_err(|e| format!("stat {path}: {}", go_errno(&e)))?;
        return Ok((scheme.into(), path.into()));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let has_port = match host.rsplit_once(':') {
        Some((h, _)) => !h.is_empty() && (!h.contains(':') || h.ends_with(']')),
        None => false,
    };
    let host = if has_port {
        host.to_string()
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:514")
    } else {
        format!("{host}:514")
    };
    Ok((scheme.into(), host))
}

/// Go's text for a file error's errno (`no such file or directory`).
fn go_errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// dockerd's `parseFacility`: a name, or a number 0..=23; empty is `daemon`. Shifted.
fn syslog_facility(facility: &str) -> Result<u8, String> {
    if facility.is_empty() {
        return Ok(3 << 3);
    }
    if let Some((_, n)) = FACILITIES.iter().find(|(name, _)| *name == facility) {
        return Ok(n << 3);
    }
    match go_atoi(facility) {
        Ok(n) if (0..=23).contains(&n) => Ok((n as u8) << 3),
        _ => Err("invalid syslog facility".into()),
    }
}

/// json-file's rotation as the user set it (`None` where unset).
struct Rotation {
    max_size: Option<u64>,
    max_files: Option<u32>,
}

/// Parses json-file's values in dockerd's order and with its messages.
fn json_file_values(opts: &HashMap<String, String>) -> Result<Rotation, String> {
    let max_size = match opts.get("max-size") {
        Some(s) => {
            let n = parse_size(s, 1000)?;
            if n <= 0 {
                return Err("max-size must be a positive number".into());
            }
            Some(n as u64)
        }
        None => None,
    };
    let max_files = match opts.get("max-file") {
        Some(s) => {
            let n = go_atoi(s)?;
            if n < 1 {
                return Err("max-file cannot be less than 1".into());
            }
            Some(u32::try_from(n).unwrap_or(u32::MAX))
        }
        None => None,
    };
    if let Some(s) = opts.get("compress") {
        let compress = go_parse_bool(s)?;
        if compress && (max_files.unwrap_or(1) == 1 || max_size.is_none()) {
            return Err(
                "compress cannot be true when max-file is less than 2 or max-size is not set"
                    .into(),
            );
        }
        if compress {
            return Err("berth does not support --log-opt compress=true yet".into());
        }
    }
    for key in ["labels-regex", "env-regex"] {
        if let Some(re) = opts.get(key).filter(|r| !r.is_empty()) {
            regex::Regex::new(re)
                .map_err(|e| format!("error parsing regexp: {}", one_line(&e.to_string())))?;
        }
    }
    if let Some(tag) = opts.get("tag") {
        parse_tag(tag)?;
    }
    Ok(Rotation {
        max_size,
        max_files,
    })
}

/// What the shim needs to write a container's log.
#[derive(Debug, PartialEq, Eq)]
pub struct ShimLog {
    /// The `none` driver.
    pub disabled: bool,
    pub max_size: u64,
    pub max_files: u32,
    pub attrs: BTreeMap<String, String>,
    /// `local` or `syslog`; none for json-file and `none`.
    pub driver: Option<LogDriver>,
}

/// The container's log settings at start. Unset max-size/max-file take berth's defaults
/// (Docker's json-file never rotates by default; berth always does).
pub fn shim_log(
    rec: &Record,
    default_max_size: u64,
    default_max_files: u32,
) -> Result<ShimLog, String> {
    let cfg = rec
        .host_config
        .log_config
        .clone()
        .unwrap_or_else(builtin_default);
    let wrap = |e: String| format!("failed to initialize logging driver: {e}");
    if cfg.typ.as_deref() == Some(NONE) {
        return Ok(ShimLog {
            disabled: true,
            max_size: 0,
            max_files: 1,
            attrs: BTreeMap::new(),
            driver: None,
        });
    }
    validate(&cfg).map_err(|e| {
        if e.starts_with("failed to initialize") {
            e
        } else {
            wrap(e)
        }
    })?;
    let opts = cfg.config.unwrap_or_default();
    match cfg.typ.as_deref() {
        Some(LOCAL) => return local_shim_log(&opts).map_err(wrap),
        Some(SYSLOG) => return syslog_shim_log(&opts, rec).map_err(wrap),
        _ => {}
    }
    let rotation = json_file_values(&opts).map_err(wrap)?;
    let mut attrs = extra_attributes(&opts, rec).map_err(wrap)?;
    if let Some(template) = opts.get("tag") {
        let tag = render_tag(&parse_tag(template).map_err(wrap)?, rec).map_err(wrap)?;
        if !tag.is_empty() {
            attrs.insert("tag".into(), tag);
        }
    }
    Ok(ShimLog {
        disabled: false,
        max_size: rotation.max_size.unwrap_or(default_max_size),
        max_files: rotation.max_files.unwrap_or(default_max_files),
        attrs,
        driver: None,
    })
}

/// The local driver's settings: its rotation, and the driver itself riding in the attrs.
fn local_shim_log(opts: &HashMap<String, String>) -> Result<ShimLog, String> {
    let (max_size, max_files, compress) = local_values(opts)?;
    Ok(ShimLog {
        disabled: false,
        max_size,
        max_files,
        attrs: BTreeMap::new(),
        driver: Some(LogDriver::Local { compress }),
    })
}

/// The syslog driver's target, with the tag rendered (dockerd's default: `{{.ID}}`).
fn syslog_shim_log(opts: &HashMap<String, String>, rec: &Record) -> Result<ShimLog, String> {
    let get = |k: &str| opts.get(k).map(String::as_str).unwrap_or("");
    let (network, address) = syslog_address(get("syslog-address"))?;
    let template = match get("tag") {
        "" => "{{.ID}}",
        t => t,
    };
    if network == "unixgram" {
        probe_unixgram(&address)?;
    }
    let target = SyslogTarget {
        network,
        address,
        facility: syslog_facility(get("syslog-facility"))?,
        format: get("syslog-format").to_string(),
        tag: render_tag(&parse_tag(template)?, rec)?,
    };
    Ok(ShimLog {
        disabled: false,
        max_size: 0,
        max_files: 1,
        attrs: BTreeMap::new(),
        driver: Some(LogDriver::Syslog(target)),
    })
}

/// dockerd dials the syslog socket when the container starts, and a refusal fails the start
/// with Go's dial error. The shim dials again for itself; connecting a datagram socket and
/// closing it sends nothing, so only this kind is tried here.
fn probe_unixgram(path: &str) -> Result<(), String> {
    let sock = std::os::unix::net::UnixDatagram::unbound().map_err(|e| e.to_string())?;
    sock.connect(path)
        .map_err(|e| format!("dial unixgram {path}: connect: {}", go_errno(&e)))
}

/// Whether the container logs with json-file (what `LogPath` in inspect names).
pub fn is_json_file(rec: &Record) -> bool {
    let typ = rec.host_config.log_config.as_ref().and_then(|c| c.typ.as_deref());
    matches!(typ, None | Some("") | Some(JSON_FILE))
}

/// Whether `logs` can read this container's log (`none` keeps none, `syslog` sends it away).
pub fn readable(rec: &Record) -> bool {
    let typ = rec
        .host_config
        .log_config
        .as_ref()
        .and_then(|c| c.typ.as_deref());
    !matches!(typ, Some(NONE) | Some(SYSLOG))
}

/// dockerd's `ExtraAttributes`: the labels and environment variables the options name or match.
fn extra_attributes(
    opts: &HashMap<String, String>,
    rec: &Record,
) -> Result<BTreeMap<String, String>, String> {
    let mut extra = BTreeMap::new();
    let empty = HashMap::new();
    let labels = rec.config.labels.as_ref().unwrap_or(&empty);
    let env: HashMap<&str, &str> = rec
        .config
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.split_once('='))
        .collect();
    let by_name = |key: &str,
                   lookup: &dyn Fn(&str) -> Option<String>,
                   extra: &mut BTreeMap<String, String>| {
        for name in opts
            .get(key)
            .filter(|v| !v.is_empty())
            .into_iter()
            .flat_map(|v| v.split(','))
        {
            if let Some(v) = lookup(name) {
                extra.insert(name.to_string(), v);
            }
        }
    };
    let by_regex = |key: &str,
                    all: &mut dyn Iterator<Item = (String, String)>,
                    extra: &mut BTreeMap<String, String>| {
        let Some(re) = opts.get(key).filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        let re = regex::Regex::new(re)
            .map_err(|e| format!("error parsing regexp: {}", one_line(&e.to_string())))?;
        extra.extend(all.filter(|(k, _)| re.is_match(k)));
        Ok::<_, String>(())
    };
    by_name("labels", &|n| labels.get(n).cloned(), &mut extra);
    by_regex(
        "labels-regex",
        &mut labels.iter().map(|(k, v)| (k.clone(), v.clone())),
        &mut extra,
    )?;
    by_name("env", &|n| env.get(n).map(|v| v.to_string()), &mut extra);
    by_regex(
        "env-regex",
        &mut env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        &mut extra,
    )?;
    Ok(extra)
}

/// A piece of a tag template.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(String),
}

/// Parses the subset of Go templates that tags use: text and `{{.Field}}` actions (with
/// optional `-` trim markers). dockerd's messages for the errors a typo makes.
fn parse_tag(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        let mut text = rest[..open].to_string();
        let Some(close) = rest[open..].find("}}") else {
            let line = 1 + template.matches('\n').count();
            return Err(format!("template: log-tag:{line}: unclosed action"));
        };
        let mut inner = &rest[open + 2..open + close];
        let mut inner_start = offset + open + 2;
        if let Some(s) = inner.strip_prefix("- ") {
            text = text.trim_end().to_string();
            inner = s;
            inner_start += 2;
        }
        let trim_after = inner.ends_with(" -");
        let inner = inner.strip_suffix(" -").unwrap_or(inner);
        let trimmed = inner.trim_start();
        inner_start += inner.len() - trimmed.len();
        let action = trimmed.trim_end();
        pieces.push(Piece::Text(text));
        let is_ident = action.len() > 1
            && action.starts_with('.')
            && action[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_ident {
            return Err(format!("berth does not support the log tag template {{{{{action}}}}} yet: only {{{{.Field}}}} actions"));
        }
        let field = &action[1..];
        if field_value_kind(field).is_none() {
            let before = &template[..inner_start];
            let line = 1 + before.matches('\n').count();
            let col = before
                .rfind('\n')
                .map(|i| inner_start - i - 1)
                .unwrap_or(inner_start);
            return Err(format!(
                "template: log-tag:{line}:{col}: executing \"log-tag\" at <.{field}>: can't evaluate field {field} in type *logger.Info"
            ));
        }
        pieces.push(Piece::Field(field.to_string()));
        let consumed = open + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
        if trim_after {
            let t = rest.trim_start();
            offset += rest.len() - t.len();
            rest = t;
        }
    }
    pieces.push(Piece::Text(rest.to_string()));
    Ok(pieces)
}

/// `Some` for the fields and methods of dockerd's `logger.Info` that print as plain strings.
fn field_value_kind(field: &str) -> Option<()> {
    const STRINGS: &[&str] = &[
        "ID",
        "FullID",
        "Name",
        "ImageID",
        "ImageFullID",
        "ImageName",
        "Command",
        "Hostname",
        "DaemonName",
        "ContainerID",
        "ContainerName",
        "ContainerEntrypoint",
        "ContainerImageID",
        "ContainerImageName",
        "LogPath",
    ];
    STRINGS.contains(&field).then_some(())
}

fn render_tag(pieces: &[Piece], rec: &Record) -> Result<String, String> {
    let short = |s: &str| s.chars().take(12).collect::<String>();
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Field(f) => out.push_str(&match f.as_str() {
                "ID" => short(&rec.id),
                "FullID" | "ContainerID" => rec.id.clone(),
                "Name" => rec.name.clone(),
                "ContainerName" => format!("/{}", rec.name),
                "ImageID" => short(&rec.image_id),
                "ImageFullID" | "ContainerImageID" => rec.image_id.clone(),
                "ImageName" | "ContainerImageName" => rec.image.clone(),
                "Command" => std::iter::once(rec.path.as_str())
                    .chain(rec.args.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" "),
                "ContainerEntrypoint" => rec.path.clone(),
                "Hostname" => nix::unistd::gethostname()
                    .map_err(|e| format!("logger: can not resolve hostname: {e}"))?
                    .to_string_lossy()
                    .into_owned(),
                // Tags are read by tools written for Docker, which name the daemon so.
                "DaemonName" => "docker".into(),
                // LogPath is not known to the driver at this point in dockerd either.
                _ => String::new(),
            }),
        }
    }
    Ok(out)
}

/// go-units' size parsing: `10m`, `1.5k`, `2 GiB`, `512`; `unit` is 1000 (`FromHumanSize`,
/// max-size) or 1024 (`RAMInBytes`). Fractions are truncated as Go does.
pub fn parse_size(s: &str, unit: i64) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{s}'");
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    // `\d+(\.\d+)*`: digits, and dots only between digits.
    if number.is_empty() || number.split('.').any(|part| part.is_empty()) {
        return Err(invalid());
    }
    let suffix = suffix
        .strip_prefix(' ')
        .unwrap_or(suffix)
        .to_ascii_lowercase();
    let mut chars = suffix.as_str();
    let mut mul: i64 = 1;
    if let Some(c) = chars.chars().next().filter(|c| "kmgtp".contains(*c)) {
        mul = unit.pow("kmgtp".find(c).unwrap_or(0) as u32 + 1);
        chars = &chars[1..];
    }
    let chars = chars.strip_prefix('i').unwrap_or(chars);
    let chars = chars.strip_prefix('b').unwrap_or(chars);
    if !chars.is_empty() {
        return Err(invalid());
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing \"{number}\": invalid syntax"))?;
    Ok((value * mul as f64) as i64)
}

/// Go's `strconv.Atoi`, with its messages.
fn go_atoi(s: &str) -> Result<i64, String> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing \"{s}\": invalid syntax"));
    }
    s.parse()
        .map_err(|_| format!("strconv.Atoi: parsing \"{s}\": value out of range"))
}

/// Go's `strconv.ParseBool`, with its message.
fn go_parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing \"{s}\": invalid syntax"
        )),
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(typ: &str, opts: &[(&str, &str)]) -> HostConfigLogConfig {
        HostConfigLogConfig {
            typ: Some(typ.into()),
            config: Some(
                opts.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }

    #[test]
    fn sizes_as_go_units() {
        assert_eq!(parse_size("10m", 1000), Ok(10_000_000));
        assert_eq!(parse_size("1.5k", 1000), Ok(1500));
        assert_eq!(parse_size("1KiB", 1000), Ok(1000));
        assert_eq!(parse_size("2 GB", 1024), Ok(2 << 30));
        assert_eq!(parse_size("512", 1000), Ok(512));
        assert_eq!(parse_size("0.5", 1000), Ok(0));
        assert_eq!(parse_size("abc", 1000), Err("invalid size: 'abc'".into()));
        assert_eq!(parse_size("-1", 1000), Err("invalid size: '-1'".into()));
        assert_eq!(parse_size("1.", 1000), Err("invalid size: '1.'".into()));
        assert_eq!(parse_size("1kx", 1000), Err("invalid size: '1kx'".into()));
        assert!(parse_size("1.2.3", 1000)
            .unwrap_err()
            .starts_with("strconv.ParseFloat"));
    }

    #[test]
    fn dockerd_checks_and_messages() {
        let err = |c: HostConfigLogConfig| validate(&c).unwrap_err();
        assert!(validate(&cfg(
            "json-file",
            &[("max-size", "1k"), ("max-file", "3"), ("tag", "{{.Name}}")]
        ))
        .is_ok());
        assert!(
            validate(&cfg("none", &[("max-size", "nonsense")])).is_ok(),
            "dockerd checks nothing for none"
        );
        assert_eq!(
            err(cfg("foo", &[])),
            "error looking up logging plugin foo: plugin \"foo\" not found"
        );
        assert_eq!(
            err(cfg("journald", &[])),
            "berth does not support the journald logging driver yet"
        );
        assert_eq!(
            err(cfg("json-file", &[("bogus", "1")])),
            "unknown log opt 'bogus' for json-file log driver"
        );
        assert_eq!(
            err(cfg("json-file", &[("mode", "x")])),
            "logger: logging mode not supported: x"
        );
        assert_eq!(
            err(cfg("json-file", &[("max-buffer-size", "4m")])),
            "logger: max-buffer-size option is only supported with 'mode=non-blocking'"
        );
        assert_eq!(
            err(cfg("json-file", &[("max-size", "abc")])),
            "failed to initialize logging driver: invalid size: 'abc'"
        );
        assert_eq!(
            err(cfg("json-file", &[("max-size", "0")])),
            "failed to initialize logging driver: max-size must be a positive number"
        );
        assert_eq!(
            err(cfg("json-file", &[("max-file", "0")])),
            "failed to initialize logging driver: max-file cannot be less than 1"
        );
        assert_eq!(
            err(cfg("json-file", &[("max-file", "x")])),
            "failed to initialize logging driver: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            err(cfg("json-file", &[("compress", "true")])),
            "failed to initialize logging driver: compress cannot be true when max-file is less than 2 or max-size is not set"
        );
        assert_eq!(
            err(cfg("json-file", &[("compress", "maybe")])),
            "failed to initialize logging driver: strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        assert!(validate(&cfg("json-file", &[("compress", "false")])).is_ok());
        assert!(err(cfg(
            "json-file",
            &[("compress", "1"), ("max-size", "1m"), ("max-file", "2")]
        ))
        .contains("berth does not support"));
        assert_eq!(
            err(cfg("json-file", &[("tag", "{{.Nope}}")])),
            "failed to initialize logging driver: template: log-tag:1:2: executing \"log-tag\" at <.Nope>: can't evaluate field Nope in type *logger.Info"
        );
        assert_eq!(
            err(cfg("json-file", &[("tag", "{{.ID")])),
            "failed to initialize logging driver: template: log-tag:1: unclosed action"
        );
        assert!(err(cfg("json-file", &[("labels-regex", "(")])).contains("error parsing regexp"));
    }

    #[test]
    fn local_and_syslog_checks_as_dockerd() {
        let err = |c: HostConfigLogConfig| validate(&c).unwrap_err();
        let init = "failed to initialize logging driver: ";
        assert!(validate(&cfg("local", &[("max-size", "1k"), ("mode", "blocking")])).is_ok());
        assert_eq!(
            err(cfg("local", &[("bogus", "1")])),
            "unknown log opt 'bogus' for log driver local"
        );
        assert_eq!(
            err(cfg("local", &[("max-file", "1")])),
            format!("{init}compression cannot be enabled when max file count is 1")
        );
        assert!(validate(&cfg("local", &[("max-file", "0"), ("compress", "false")])).is_ok());
        assert_eq!(
            err(cfg("local", &[("max-file", "-1")])),
            format!("{init}max file count cannot be less than 0")
        );
        assert_eq!(
            err(cfg("local", &[("max-file", "x")])),
            format!(
                "{init}invalid value for max-file: x: strconv.Atoi: parsing \"x\": invalid syntax"
            )
        );
        assert_eq!(
            err(cfg("local", &[("max-size", "abc")])),
            format!("{init}invalid value for max-size: abc: invalid size: 'abc'")
        );
        assert_eq!(
            err(cfg("local", &[("compress", "maybe")])),
            format!("{init}error reading compress log option: strconv.ParseBool: parsing \"maybe\": invalid syntax")
        );
        assert_eq!(
            err(cfg("syslog", &[("bogus", "1")])),
            "unknown log opt 'bogus' for syslog log driver"
        );
        assert_eq!(
            err(cfg("syslog", &[("syslog-address", "foo")])),
            "syslog-address should be in form proto://address, got foo"
        );
        assert_eq!(
            err(cfg("syslog", &[("syslog-address", "unixgram:///nope/x")])),
            "stat /nope/x: no such file or directory"
        );
        let udp = ("syslog-address", "udp://127.0.0.1");
        assert_eq!(
            err(cfg("syslog", &[udp, ("syslog-facility", "x")])),
            "invalid syslog facility"
        );
        assert_eq!(
            err(cfg("syslog", &[udp, ("syslog-facility", "24")])),
            "invalid syslog facility"
        );
        assert_eq!(
            err(cfg("syslog", &[udp, ("syslog-format", "x")])),
            "Invalid syslog format"
        );
        assert!(validate(&cfg(
            "syslog",
            &[
                udp,
                ("syslog-facility", "local3"),
                ("syslog-format", "rfc5424micro")
            ]
        ))
        .is_ok());
        assert_eq!(
            syslog_address("udp://127.0.0.1").unwrap().1,
            "127.0.0.1:514"
        );
        assert_eq!(syslog_address("tcp://[::1]:6514").unwrap().1, "[::1]:6514");
        assert_eq!(syslog_facility("local3"), Ok(19 << 3));
        assert_eq!(syslog_facility("7"), Ok(7 << 3));
    }

    #[test]
    fn drivers_ride_in_the_attrs() {
        let mut rec = record(&[]);
        rec.host_config.log_config = Some(cfg("local", &[]));
        let log = shim_log(&rec, 1, 1).unwrap();
        assert_eq!((log.max_size, log.max_files), (20 << 20, 5));
        let driver = log.driver.clone().unwrap();
        assert_eq!(driver, LogDriver::Local { compress: true });
        assert!(readable(&rec));
        rec.host_config.log_config =
            Some(cfg("syslog", &[("syslog-address", "udp://127.0.0.1:9")]));
        let log = shim_log(&rec, 1, 1).unwrap();
        let driver = log.driver.clone().unwrap();
        assert_eq!(
            driver,
            LogDriver::Syslog(SyslogTarget {
                network: "udp".into(),
                address: "127.0.0.1:9".into(),
                facility: 3 << 3,
                format: String::new(),
                tag: "0123456789ab".into(),
            })
        );
        assert!(!readable(&rec));
    }

    #[test]
    fn merge_fills_from_the_daemon_default() {
        let default = cfg("json-file", &[("max-size", "1m"), ("max-file", "3")]);
        let m = merge(Some(&cfg("", &[("max-size", "2k")])), &default);
        assert_eq!(m.typ.as_deref(), Some("json-file"));
        let c = m.config.unwrap();
        assert_eq!(
            (c["max-size"].as_str(), c["max-file"].as_str()),
            ("2k", "3")
        );
        let none = merge(Some(&cfg("none", &[])), &default);
        assert!(none.config.unwrap().is_empty());
        assert_eq!(merge(None, &builtin_default()), builtin_default());
    }

    fn record(opts: &[(&str, &str)]) -> Record {
        let mut rec: Record = serde_json::from_value(serde_json::json!({
            "id": "0123456789abcdef0123", "name": "web", "created": "", "image": "busybox",
            "image_id": "sha256:5d29bc371fc2aa", "config": {}, "host_config": {}, "path": "echo",
            "args": ["hi"], "state": crate::state::RunState::default(), "restart_count": 0
        }))
        .unwrap();
        rec.config.labels = Some(
            [("com.a", "x"), ("b", "y z")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        rec.config.env = Some(vec!["FOO=bar".into(), "PATH=/bin".into(), "Q=a&b".into()]);
        rec.host_config.log_config = Some(cfg("json-file", opts));
        rec
    }

    #[test]
    fn attrs_and_tags_as_dockerd() {
        let rec = record(&[
            ("labels", "com.a,b,nope"),
            ("env", "FOO,Q"),
            ("tag", "{{.Name}}/{{.ID}}"),
        ]);
        let log = shim_log(&rec, 20 << 20, 2).unwrap();
        let want: BTreeMap<String, String> = [
            ("FOO", "bar"),
            ("Q", "a&b"),
            ("b", "y z"),
            ("com.a", "x"),
            ("tag", "web/0123456789ab"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(log.attrs, want);
        assert_eq!(
            (log.max_size, log.max_files),
            (20 << 20, 2),
            "berth's rotation when unset"
        );
        let rec = record(&[
            ("labels-regex", "^com"),
            ("env-regex", "^P"),
            ("max-size", "1k"),
            ("max-file", "5"),
        ]);
        let log = shim_log(&rec, 20 << 20, 2).unwrap();
        assert_eq!(log.attrs.keys().collect::<Vec<_>>(), ["PATH", "com.a"]);
        assert_eq!((log.max_size, log.max_files), (1000, 5));
        let rec = record(&[(
            "tag",
            "{{ .ImageID }}|{{.ImageName}}|{{.DaemonName}}|{{.Command}} {{- .ContainerName -}} x",
        )]);
        assert_eq!(
            shim_log(&rec, 1, 1).unwrap().attrs["tag"],
            "sha256:5d29b|busybox|docker|echo hi/webx"
        );
        let mut rec = record(&[]);
        rec.host_config.log_config = Some(cfg("none", &[]));
        assert!(shim_log(&rec, 1, 1).unwrap().disabled);
        assert!(!readable(&rec));
    }
}
