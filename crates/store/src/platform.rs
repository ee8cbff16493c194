//! Platforms ("linux/amd64", "linux/arm/v7") and which of an index's manifests this host runs,
//! following containerd's `platforms` package: names are normalised first (`x86_64` is
//! `amd64`, `aarch64` is `arm64`, `armhf` is `arm/v7`, …), and a host accepts its own
//! platform and the older ones its CPU also runs, best first: amd64 at its micro-architecture
//! level down to v1, then 386; arm64, then arm v8 down to v5; arm vN down to v5.

use serde::{Deserialize, Serialize};

/// A platform as OCI descriptors and image configs spell it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// A platform from its three parts; an empty variant is none.
    pub fn new(os: &str, architecture: &str, variant: &str) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: (!variant.is_empty()).then(|| variant.to_string()),
            ..Platform::default()
        }
    }

    /// containerd's `Normalize`: the canonical spelling of OS, architecture and variant, so
    /// that equal platforms compare equal.
    pub fn normalize(&self) -> Platform {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_string(),
            other => other.to_string(),
        };
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.as_deref().unwrap_or("").to_ascii_lowercase();
        let (arch, variant) = match (arch.as_str(), variant.as_str()) {
            ("i386", _) => ("386", String::new()),
            ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", String::new()),
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v.to_string()),
            ("aarch64" | "arm64", "8" | "v8") => ("arm64", String::new()),
            ("aarch64" | "arm64", v) => ("arm64", v.to_string()),
            ("armhf", _) => ("arm", "v7".to_string()),
            ("armel", _) => ("arm", "v6".to_string()),
            ("arm", "" | "7") => ("arm", "v7".to_string()),
            ("arm", "5" | "6" | "8") => ("arm", format!("v{variant}")),
            (a, v) => (a, v.to_string()),
        };
        Platform::new(&os, arch, &variant)
    }

    /// "linux/amd64", "linux/arm/v7": how errors and `docker` print a platform.
    pub fn display(&self) -> String {
        match self.variant.as_deref() {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// Accepts a host's platform and the older ones it also runs, and ranks them.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Normalised, best first.
    accepted: Vec<Platform>,
}

impl Matcher {
    /// The platforms `platform` runs, best first (containerd's `platforms.Only`).
    pub fn only(platform: &Platform) -> Matcher {
        let p = platform.normalize();
        let os = p.os.clone();
        let at = |arch: &str, variant: String| Platform::new(&os, arch, &variant);
        let level = |v: Option<&str>, default: u32| {
            v.and_then(|v| v.trim_start_matches('v').parse::<u32>().ok())
                .unwrap_or(default)
        };
        let mut accepted = Vec::new();
        match p.architecture.as_str() {
            "amd64" => {
                for l in (1..=level(p.variant.as_deref(), 1)).rev() {
                    accepted.push(at(
                        "amd64",
                        if l == 1 {
                            String::new()
                        } else {
                            format!("v{l}")
                        },
                    ));
                }
                accepted.push(at("386", String::new()));
            }
            "arm64" => {
                accepted.push(p.clone());
                for l in (5..=8).rev() {
                    accepted.push(at("arm", format!("v{l}")));
                }
            }
            "arm" => {
                for l in (5..=level(p.variant.as_deref(), 7)).rev() {
                    accepted.push(at("arm", format!("v{l}")));
                }
            }
            _ => accepted.push(p.clone()),
        }
        Matcher { accepted }
    }

    /// This machine: linux and the CPU's architecture (and amd64 level, as containerd reads it).
    pub fn host() -> Matcher {
        Matcher::only(&host_platform())
    }

    /// How good a match `p` is (0 is best), or None when the host cannot run it.
    pub fn rank(&self, p: &Platform) -> Option<usize> {
        let n = p.normalize();
        self.accepted.iter().position(|a| {
            a.os == n.os && a.architecture == n.architecture && a.variant == n.variant
        })
    }

    /// Whether the host runs `p`.
    pub fn matches(&self, p: &Platform) -> bool {
        self.rank(p).is_some()
    }

    /// The preferred platform, as errors name it.
    pub fn preferred(&self) -> Platform {
        self.accepted.first().cloned().unwrap_or_default()
    }
}

/// The host's platform: linux, GOARCH's name for the CPU, and its variant.
pub fn host_platform() -> Platform {
    let (arch, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", amd64_level()),
        "aarch64" => ("arm64", String::new()),
        "arm" => ("arm", "v7".to_string()),
        "x86" => ("386", String::new()),
        "powerpc64" => ("ppc64le", String::new()),
        "loongarch64" => ("loong64", String::new()),
        other => (other, String::new()),
    };
    Platform::new("linux", arch, &variant)
}

/// The x86-64 micro-architecture level ("v2".."v4", "" for v1) from the CPU's features, as
/// the psABI defines the levels.
#[cfg(target_arch = "x86_64")]
fn amd64_level() -> String {
    use std::arch::is_x86_feature_detected as has;
    let v2 = has!("cmpxchg16b")
        && has!("popcnt")
        && has!("sse3")
        && has!("sse4.1")
        && has!("sse4.2")
        && has!("ssse3");
    let v3 = v2
        && has!("avx")
        && has!("avx2")
        && has!("bmi1")
        && has!("bmi2")
        && has!("f16c")
        && has!("fma")
        && has!("lzcnt")
        && has!("movbe")
        && has!("xsave");
    let v4 = v3
        && has!("avx512f")
        && has!("avx512bw")
        && has!("avx512cd")
        && has!("avx512dq")
        && has!("avx512vl");
    match (v2, v3, v4) {
        (_, _, true) => "v4",
        (_, true, _) => "v3",
        (true, ..) => "v2",
        _ => "",
    }
    .to_string()
}

#[cfg(not(target_arch = "x86_64"))]
fn amd64_level() -> String {
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_containerd() {
        let n = |os: &str, a: &str, v: &str| Platform::new(os, a, v).normalize().display();
        assert_eq!(n("Linux", "x86_64", ""), "linux/amd64");
        assert_eq!(n("linux", "amd64", "v1"), "linux/amd64");
        assert_eq!(n("linux", "aarch64", "v8"), "linux/arm64");
        assert_eq!(n("linux", "armhf", ""), "linux/arm/v7");
        assert_eq!(n("linux", "arm", ""), "linux/arm/v7");
        assert_eq!(n("linux", "arm", "6"), "linux/arm/v6");
        assert_eq!(n("linux", "i386", ""), "linux/386");
        assert_eq!(n("macos", "arm64", ""), "darwin/arm64");
    }

    #[test]
    fn amd64_host_accepts_older_levels_then_386() {
        let m = Matcher::only(&Platform::new("linux", "amd64", "v3"));
        let r = |a: &str, v: &str| m.rank(&Platform::new("linux", a, v));
        assert_eq!(r("amd64", "v3"), Some(0));
        assert_eq!(r("amd64", "v2"), Some(1));
        assert_eq!(r("amd64", ""), Some(2));
        assert_eq!(r("x86_64", "v1"), Some(2));
        assert_eq!(r("386", ""), Some(3));
        assert_eq!(r("amd64", "v4"), None);
        assert_eq!(r("arm64", ""), None);
        assert!(!m.matches(&Platform::new("windows", "amd64", "")));
        assert!(!m.matches(&Platform::new("unknown", "unknown", "")));
    }

    #[test]
    fn arm_hosts_accept_older_variants() {
        let m = Matcher::only(&Platform::new("linux", "arm64", ""));
        assert_eq!(m.rank(&Platform::new("linux", "arm64", "v8")), Some(0));
        assert!(m.matches(&Platform::new("linux", "arm", "v7")));
        assert!(!m.matches(&Platform::new("linux", "amd64", "")));
        let m = Matcher::only(&Platform::new("linux", "arm", "v6"));
        assert!(m.matches(&Platform::new("linux", "arm", "v5")));
        assert!(!m.matches(&Platform::new("linux", "arm", "v7")));
    }

    #[test]
    fn host_is_linux_and_runs_itself() {
        let h = host_platform();
        assert_eq!(h.os, "linux");
        assert_eq!(Matcher::host().rank(&h), Some(0));
    }
}
