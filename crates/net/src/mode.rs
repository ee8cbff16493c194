//! `HostConfig.NetworkMode`: which network namespace a container gets, and Docker's
//! create-time rules about which other settings each mode allows.

/// A container's network mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Docker's default bridge (`""`, `default`, `bridge`).
    Bridge,
    /// Its own namespace with only `lo`.
    None,
    /// The host's namespace.
    Host,
    /// Another container's namespace (`container:<name|id>`).
    Container(String),
    /// A user-defined network, by name or ID.
    User(String),
}

/// The settings the mode rules look at, taken from the create request.
#[derive(Debug, Clone, Default)]
pub struct ModeChecks {
    pub hostname: bool,
    pub dns: bool,
    pub extra_hosts: bool,
    pub links: bool,
    pub published_ports: bool,
    pub exposed_ports: bool,
}

impl NetworkMode {
    /// Parses a mode; `container:` without a name is an error (dockerd's message).
    pub fn parse(mode: Option<&str>) -> Result<NetworkMode, String> {
        Ok(match mode.unwrap_or_default() {
            "" | "default" | "bridge" => NetworkMode::Bridge,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            m => match m.strip_prefix("container:") {
                Some("") => {
                    return Err(
                        "Invalid network mode: invalid container format container:<name|id>".into(),
                    )
                }
                Some(other) => NetworkMode::Container(other.to_string()),
                None => NetworkMode::User(m.to_string()),
            },
        })
    }

    /// Whether the container has a namespace of its own that the daemon must make.
    pub fn owns_namespace(&self) -> bool {
        matches!(
            self,
            NetworkMode::Bridge | NetworkMode::None | NetworkMode::User(_)
        )
    }

    /// Docker's conflicts between this mode and other settings, checked at create.
    pub fn check(&self, c: &ModeChecks) -> Result<(), String> {
        let fail = |what: &str| Err(format!("conflicting options: {what}"));
        if let NetworkMode::Container(_) = self {
            if c.hostname {
                return fail("hostname and the network mode");
            }
            if c.links {
                return fail("container type network can't be used with links. This would result in undefined behavior");
            }
            if c.dns {
                return fail("dns and the network mode");
            }
            if c.extra_hosts {
                return fail("custom host-to-IP mapping and the network mode");
            }
            if c.published_ports {
                return fail("port publishing and the container type network mode");
            }
            if c.exposed_ports {
                return fail("port exposing and the container type network mode");
            }
        }
        Ok(())
    }

    /// The warning Docker gives when the mode makes a setting pointless.
    pub fn warning(&self, c: &ModeChecks) -> Option<&'static str> {
        (*self == NetworkMode::Host && c.published_ports)
            .then_some("Published ports are discarded when using host network mode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_mode() {
        assert_eq!(NetworkMode::parse(None).unwrap(), NetworkMode::Bridge);
        assert_eq!(
            NetworkMode::parse(Some("default")).unwrap(),
            NetworkMode::Bridge
        );
        assert_eq!(NetworkMode::parse(Some("none")).unwrap(), NetworkMode::None);
        assert_eq!(NetworkMode::parse(Some("host")).unwrap(), NetworkMode::Host);
        assert_eq!(
            NetworkMode::parse(Some("container:web")).unwrap(),
            NetworkMode::Container("web".into())
        );
        assert_eq!(
            NetworkMode::parse(Some("mynet")).unwrap(),
            NetworkMode::User("mynet".into())
        );
        assert_eq!(
            NetworkMode::parse(Some("container:")).unwrap_err(),
            "Invalid network mode: invalid container format container:<name|id>"
        );
        assert!(!NetworkMode::Host.owns_namespace() && NetworkMode::None.owns_namespace());
    }

    #[test]
    fn container_mode_conflicts_as_dockerd() {
        let c = NetworkMode::Container("x".into());
        let with = |f: fn(&mut ModeChecks)| {
            let mut checks = ModeChecks::default();
            f(&mut checks);
            checks
        };
        assert_eq!(
            c.check(&with(|c| c.hostname = true)).unwrap_err(),
            "conflicting options: hostname and the network mode"
        );
        assert_eq!(
            c.check(&with(|c| c.dns = true)).unwrap_err(),
            "conflicting options: dns and the network mode"
        );
        assert_eq!(
            c.check(&with(|c| c.extra_hosts = true)).unwrap_err(),
            "conflicting options: custom host-to-IP mapping and the network mode"
        );
        assert_eq!(
            c.check(&with(|c| c.published_ports = true)).unwrap_err(),
            "conflicting options: port publishing and the container type network mode"
        );
        assert_eq!(
            c.check(&with(|c| c.exposed_ports = true)).unwrap_err(),
            "conflicting options: port exposing and the container type network mode"
        );
        assert!(NetworkMode::Host
            .check(&with(|c| c.hostname = true))
            .is_ok());
        assert_eq!(
            NetworkMode::Host.warning(&with(|c| c.published_ports = true)),
            Some("Published ports are discarded when using host network mode")
        );
    }
}
