//! The API versions berthd serves.

/// Oldest API version accepted in a `/v1.NN/` prefix (Docker's own minimum).
pub const MIN_API_VERSION: ApiVersion = ApiVersion(1, 24);
/// The version berthd advertises: Docker 20.10's, which is what berth implements.
pub const API_VERSION: ApiVersion = ApiVersion(1, 41);
/// The engine version reported by `/version`.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// An API version such as `1.41`, ordered by (major, minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    /// Parses `1.41` (no leading `v`).
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (major, minor) = s.split_once('.')?;
        Some(ApiVersion(major.parse().ok()?, minor.parse().ok()?))
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_versions() {
        assert_eq!(ApiVersion::parse("1.41"), Some(ApiVersion(1, 41)));
        assert_eq!(ApiVersion::parse("1.x"), None);
        assert!(ApiVersion(1, 9) < ApiVersion(1, 24));
        assert_eq!(API_VERSION.to_string(), "1.41");
    }
}
