//! ARG scoping, as dockerd 20.10's `buildargs.go`: which build args an instruction sees, which
//! go into a RUN's environment and cache key, and which `--build-arg`s nothing consumed.

use std::collections::{BTreeMap, BTreeSet};

/// Proxy variables: usable without an `ARG`, and left out of the cache key and history unless
/// the Dockerfile declares them (they should not make an image differ).
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

fn is_proxy(key: &str) -> bool {
    PROXY_ARGS.contains(&key)
}

/// The build args of one stage (or of the meta ARGs before the first FROM).
#[derive(Debug, Clone, Default)]
pub struct BuildArgs {
    /// `--build-arg`s of the request; `None` = named without a value.
    from_options: BTreeMap<String, Option<String>>,
    /// ARGs declared so far in this stage, with their expanded default.
    allowed: BTreeMap<String, Option<String>>,
    /// ARGs declared before the first FROM, with their values.
    meta: BTreeMap<String, Option<String>>,
    /// Every ARG name declared anywhere so far (meta ARGs included): not "unconsumed".
    referenced: BTreeSet<String>,
}

impl BuildArgs {
    pub fn new(from_options: BTreeMap<String, Option<String>>) -> BuildArgs {
        BuildArgs {
            from_options,
            ..Default::default()
        }
    }

    /// What a new stage starts with: the meta args and what is referenced, no allowed args.
    pub fn for_stage(&self) -> BuildArgs {
        BuildArgs {
            allowed: BTreeMap::new(),
            ..self.clone()
        }
    }

    /// An `ARG` before the first FROM (visible to FROM lines, and a declared name).
    pub fn add_meta(&mut self, key: &str, value: Option<String>) {
        self.add(key, value.clone());
        self.meta.insert(key.to_string(), value);
    }

    /// An `ARG` inside a stage: visible from here to the stage's end.
    pub fn add(&mut self, key: &str, value: Option<String>) {
        self.allowed.insert(key.to_string(), value);
        self.referenced.insert(key.to_string());
    }

    /// Adds the names another stage declared (for the unconsumed-args warning).
    pub fn merge_referenced(&mut self, other: &BuildArgs) {
        self.referenced.extend(other.referenced.iter().cloned());
    }

    /// Marks names as declared without making them visible (ARGs of stages the build skipped).
    pub fn reference(&mut self, key: &str) {
        self.referenced.insert(key.to_string());
    }

    /// The value of `key` given its declared default: the `--build-arg` when it has a value,
    /// else the default, else (no default) the meta arg's value, else unset.
    fn value(&self, key: &str, default: Option<&Option<String>>) -> Option<String> {
        if let Some(Some(v)) = self.from_options.get(key) {
            return Some(v.clone());
        }
        match default {
            Some(Some(d)) => Some(d.clone()),
            _ => self.meta.get(key).cloned().flatten(),
        }
    }

    /// Every allowed arg (declared ones and proxies) with a value.
    pub fn all_allowed(&self) -> BTreeMap<String, String> {
        self.resolve(&self.allowed)
    }

    /// Every meta arg with a value (proxies included): what FROM lines expand with.
    pub fn all_meta(&self) -> BTreeMap<String, String> {
        self.resolve(&self.meta)
    }

    fn resolve(&self, source: &BTreeMap<String, Option<String>>) -> BTreeMap<String, String> {
        let keys = source
            .keys()
            .map(String::as_str)
            .chain(PROXY_ARGS.iter().copied());
        keys.filter_map(|k| self.value(k, source.get(k)).map(|v| (k.to_string(), v)))
            .collect()
    }

    /// `K=V` for each allowed arg that no `env` entry (`K=V`) shadows: what expands words
    /// beside the config's Env, and what a RUN gets in its environment.
    pub fn filter_allowed(&self, env: &[String]) -> Vec<String> {
        let shadowed: BTreeSet<&str> = env
            .iter()
            .map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k))
            .collect();
        self.all_allowed()
            .into_iter()
            .filter(|(k, _)| !shadowed.contains(k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// The RUN cache-key prefix `["|N", "K=V"…]` (sorted; proxies only when declared), or
    /// nothing when no arg is in scope.
    pub fn run_prefix(&self, in_scope: &[String]) -> Vec<String> {
        if in_scope.is_empty() {
            return Vec::new();
        }
        let mut kept: Vec<String> = in_scope
            .iter()
            .filter(|kv| {
                let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
                self.allowed.contains_key(key) || !is_proxy(key)
            })
            .cloned()
            .collect();
        kept.sort();
        let mut out = vec![format!("|{}", kept.len())];
        out.extend(kept);
        out
    }

    /// `--build-arg`s that no ARG declared (proxies excepted), sorted: the end-of-build warning.
    pub fn unconsumed(&self) -> Vec<String> {
        self.from_options
            .keys()
            .filter(|k| !is_proxy(k) && !self.referenced.contains(*k))
            .cloned()
            .collect()
    }
}

/// `[Warning] One or more build-args [A B] were not consumed` (Go's `%v` of the list).
pub fn unconsumed_warning(names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| {
        format!(
            "[Warning] One or more build-args [{}] were not consumed\n",
            names.join(" ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(String::from)))
            .collect()
    }

    #[test]
    fn scoping_follows_dockerd() {
        let mut global = BuildArgs::new(opts(&[
            ("V", Some("7")),
            ("UNUSED", Some("1")),
            ("HTTP_PROXY", Some("p")),
            ("N", None),
        ]));
        global.add_meta("BASE", Some("busybox".into()));
        assert_eq!(
            global.all_meta().get("BASE").map(String::as_str),
            Some("busybox")
        );
        assert_eq!(
            global.all_meta().get("HTTP_PROXY").map(String::as_str),
            Some("p")
        );

        let mut stage = global.for_stage();
        // A fresh stage sees no declared args, only proxies.
        assert_eq!(stage.filter_allowed(&[]), ["HTTP_PROXY=p"]);
        stage.add("BASE", None); // takes the meta value
        stage.add("V", Some("1".into())); // the --build-arg wins over the default
        stage.add("NODEF", None); // declared, no value: not in scope
        stage.add("N", Some("d".into())); // null --build-arg: the default
        let env = vec!["PATH=/bin".to_string(), "N=shadow".to_string()];
        let in_scope = stage.filter_allowed(&env);
        assert_eq!(in_scope, ["BASE=busybox", "HTTP_PROXY=p", "V=7"]);
        // Undeclared proxies stay out of the cache key.
        assert_eq!(stage.run_prefix(&in_scope), ["|2", "BASE=busybox", "V=7"]);
        assert!(stage.run_prefix(&[]).is_empty());

        global.merge_referenced(&stage);
        assert_eq!(global.unconsumed(), ["UNUSED"]);
        assert_eq!(
            unconsumed_warning(&global.unconsumed()).unwrap(),
            "[Warning] One or more build-args [UNUSED] were not consumed\n"
        );
    }

    #[test]
    fn declared_proxies_join_the_key() {
        let mut stage = BuildArgs::new(opts(&[("http_proxy", Some("x"))])).for_stage();
        stage.add("http_proxy", None);
        let in_scope = stage.filter_allowed(&[]);
        assert_eq!(stage.run_prefix(&in_scope), ["|1", "http_proxy=x"]);
    }
}
