//! Query-string helpers: Docker's booleans (`1`, `true`, `True`) and repeated keys.

use std::collections::HashMap;

/// All query pairs, keeping repeated keys in order.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    /// Docker's truthiness: anything but empty, `0`, `false`/`False`/`FALSE`, `no` is true.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "" | "0" | "false" | "no"))
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// The `filters` parameter: `{"key":["v"]}` or the legacy `{"key":{"v":true}}`.
    pub fn filters(&self) -> Result<HashMap<String, Vec<String>>, String> {
        let Some(raw) = self.get("filters").filter(|f| !f.is_empty()) else { return Ok(HashMap::new()) };
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| format!("invalid filter: {e}"))?;
        let map = value.as_object().ok_or("invalid filter: not an object")?;
        Ok(map
            .iter()
            .map(|(k, v)| {
                let values = match v {
                    serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
                    serde_json::Value::Object(o) => o.keys().cloned().collect(),
                    _ => Vec::new(),
                };
                (k.clone(), values)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_queries() {
        let q = Query::parse(Some("all=1&changes=CMD%20x&changes=ENV%20a%3Db&force=False&filters=%7B%22status%22%3A%7B%22running%22%3Atrue%7D%7D"));
        assert!(q.flag("all"));
        assert!(!q.flag("force"));
        assert!(!q.flag("missing"));
        assert_eq!(q.all("changes"), ["CMD x", "ENV a=b"]);
        assert_eq!(q.filters().unwrap()["status"], ["running"]);
    }
}
