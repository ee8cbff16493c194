//! The daemon's event log: every change to a container, image or volume is published here.
//! `GET /events` replays the recent ones (`since`) and follows new ones, as Docker does.

use super::Engine;
use crate::state::Record;
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// How many past events `since` can replay. Docker keeps 256; events are small.
const HISTORY: usize = 1024;

/// One event, serialised as Docker's `events.Message`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `container`, `image`, `volume`, `network` or `daemon`.
    pub kind: &'static str,
    pub action: String,
    pub actor_id: String,
    pub attributes: BTreeMap<String, String>,
    pub time_nano: i64,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        // The pre-1.22 fields, which Docker still fills for containers and images.
        if matches!(self.kind, "container" | "image") {
            m.serialize_entry("status", &self.action)?;
            m.serialize_entry("id", &self.actor_id)?;
            if let Some(image) = self.attributes.get("image").filter(|_| self.kind == "container") {
                m.serialize_entry("from", image)?;
            }
        }
        m.serialize_entry("Type", self.kind)?;
        m.serialize_entry("Action", &self.action)?;
        m.serialize_entry("Actor", &Actor { id: &self.actor_id, attributes: &self.attributes })?;
        m.serialize_entry("scope", "local")?;
        m.serialize_entry("time", &self.time_nano.div_euclid(1_000_000_000))?;
        m.serialize_entry("timeNano", &self.time_nano)?;
        m.end()
    }
}

#[derive(serde::Serialize)]
struct Actor<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "Attributes")]
    attributes: &'a BTreeMap<String, String>,
}

/// Recent events and the live feed.
pub struct EventLog {
    recent: Mutex<VecDeque<Arc<Event>>>,
    live: broadcast::Sender<Arc<Event>>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog { recent: Mutex::new(VecDeque::with_capacity(HISTORY)), live: broadcast::channel(HISTORY).0 }
    }
}

impl EventLog {
    pub fn publish(&self, kind: &'static str, action: &str, actor_id: &str, attributes: BTreeMap<String, String>) {
        let time_nano = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let event = Arc::new(Event { kind, action: action.to_string(), actor_id: actor_id.to_string(), attributes, time_nano });
        // Under the lock, so a subscriber sees every event exactly once: either in the
        // history it copied or on its receiver.
        let mut recent = super::lock(&self.recent);
        if recent.len() == HISTORY {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        let _ = self.live.send(event);
    }

    /// A container event, with the container's labels, image and name as Docker gives them.
    pub fn container(&self, rec: &Record, action: &str, extra: &[(&str, String)]) {
        let mut attributes: BTreeMap<String, String> =
            rec.config.labels.clone().unwrap_or_default().into_iter().collect();
        // A build container on scratch has no image: Docker then leaves the key (and `from`) out.
        if !rec.image.is_empty() {
            attributes.insert("image".into(), rec.image.clone());
        }
        attributes.insert("name".into(), rec.name.clone());
        attributes.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        self.publish("container", action, &rec.id, attributes);
    }

    /// The recorded events at or after `since_nano`, and a receiver for everything after them.
    pub fn subscribe(&self, since_nano: Option<i64>) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let recent = super::lock(&self.recent);
        let past = match since_nano {
            Some(since) => recent.iter().filter(|e| e.time_nano >= since).cloned().collect(),
            None => Vec::new(),
        };
        (past, self.live.subscribe())
    }
}

/// The filter keys `GET /events` accepts.
const FILTER_KEYS: &[&str] = &["container", "daemon", "event", "image", "label", "network", "scope", "type", "volume"];

/// Docker's event filters: every key present must match.
#[derive(Debug, Default)]
pub struct EventFilter(HashMap<String, Vec<String>>);

impl EventFilter {
    pub fn new(filters: HashMap<String, Vec<String>>) -> Result<EventFilter, String> {
        if let Some(bad) = filters.keys().find(|k| !FILTER_KEYS.contains(&k.as_str())) {
            return Err(format!("invalid filter '{bad}'"));
        }
        Ok(EventFilter(filters))
    }

    pub fn matches(&self, e: &Event) -> bool {
        self.action_matches(e)
            && self.exact("type", e.kind)
            && self.exact("scope", "local")
            && self.named("daemon", "daemon", e)
            && self.named("container", "container", e)
            && self.named("volume", "volume", e)
            && self.named("network", "network", e)
            && self.image_matches(e)
            && self.labels_match(e)
    }

    fn values(&self, key: &str) -> Option<&Vec<String>> {
        self.0.get(key).filter(|v| !v.is_empty())
    }

    fn exact(&self, key: &str, value: &str) -> bool {
        self.values(key).is_none_or(|vs| vs.iter().any(|v| v == value))
    }

    /// `exec_create`, `exec_start` and `health_status` also match their `action: detail` forms.
    fn action_matches(&self, e: &Event) -> bool {
        let Some(wanted) = self.values("event") else { return true };
        wanted.iter().any(|w| {
            w == &e.action
                || (matches!(w.as_str(), "exec_create" | "exec_start" | "health_status")
                    && e.action.starts_with(w.as_str()))
        })
    }

    /// An object filter: an event of that type whose ID starts with, or whose name is, a value.
    fn named(&self, key: &str, kind: &str, e: &Event) -> bool {
        let Some(wanted) = self.values(key) else { return true };
        let name = e.attributes.get("name").map(String::as_str).unwrap_or("");
        e.kind == kind && wanted.iter().any(|w| e.actor_id.starts_with(w.as_str()) || name.starts_with(w.as_str()))
    }

    /// Containers match by the image they were made from, images by ID or reference.
    fn image_matches(&self, e: &Event) -> bool {
        let Some(wanted) = self.values("image") else { return true };
        let name_attr = if e.kind == "image" { "name" } else { "image" };
        let name = e.attributes.get(name_attr).map(String::as_str).unwrap_or("");
        let candidates = [e.actor_id.as_str(), name, strip_tag(&e.actor_id), strip_tag(name)];
        wanted.iter().any(|w| candidates.contains(&w.as_str()))
    }

    /// `label=key` or `label=key=value` against the event's attributes.
    fn labels_match(&self, e: &Event) -> bool {
        let Some(wanted) = self.values("label") else { return true };
        wanted.iter().all(|w| match w.split_once('=') {
            Some((k, v)) => e.attributes.get(k).is_some_and(|have| have == v),
            None => e.attributes.contains_key(w.as_str()),
        })
    }
}

/// `busybox:latest` → `busybox`; a registry port is not a tag.
fn strip_tag(reference: &str) -> &str {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') && !reference.starts_with("sha256:") => &reference[..i],
        _ => reference,
    }
}

impl Engine {
    /// Events matching `filter`: the recorded ones from `since` (Unix nanoseconds), then new
    /// ones as they happen, until `until` passes (or forever).
    pub fn follow_events(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        filter: EventFilter,
    ) -> tokio::sync::mpsc::Receiver<Arc<Event>> {
        let (past, mut live) = self.events.subscribe(since);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let wanted = move |e: &Event| filter.matches(e) && until.is_none_or(|u| e.time_nano <= u);
        tokio::spawn(async move {
            for e in past.into_iter().filter(|e| wanted(e)) {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            let deadline = until.map(|u| {
                let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
                tokio::time::Instant::now() + std::time::Duration::from_nanos(u.saturating_sub(now).max(0) as u64)
            });
            loop {
                let next = async {
                    match deadline {
                        Some(d) => tokio::time::timeout_at(d, live.recv()).await.ok(),
                        None => Some(live.recv().await),
                    }
                };
                tokio::select! {
                    _ = tx.closed() => return,
                    got = next => match got {
                        None | Some(Err(broadcast::error::RecvError::Closed)) => return,
                        // A reader too slow for the feed misses some events rather than stall it.
                        Some(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                        Some(Ok(e)) if wanted(&e) => {
                            if tx.send(e).await.is_err() {
                                return;
                            }
                        }
                        Some(Ok(_)) => {}
                    }
                }
            }
        });
        rx
    }

    pub(crate) fn container_event(&self, rec: &Record, action: &str, extra: &[(&str, String)]) {
        self.events.container(rec, action, extra);
    }

    /// An image event carries the image's labels while it still exists (not on `delete`),
    /// then `name`, as Docker's `LogImageEvent` does; `image_id` may be a reference (`pull`).
    pub(crate) fn image_event(&self, image_id: &str, name: &str, action: &str) {
        let mut attributes: BTreeMap<String, String> = match self.store.resolve(image_id) {
            Ok(image) => image.config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default().into_iter().collect(),
            Err(_) => BTreeMap::new(),
        };
        attributes.insert("name".to_string(), name.to_string());
        self.events.publish("image", action, image_id, attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &'static str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            kind,
            action: action.into(),
            actor_id: id.into(),
            attributes: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            time_nano: 1_700_000_000_123_456_789,
        }
    }

    fn filter(pairs: &[(&str, &str)]) -> EventFilter {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        EventFilter::new(m).unwrap()
    }

    #[test]
    fn serialises_like_docker() {
        let e = event("container", "start", "abc", &[("image", "busybox"), ("name", "web")]);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"status":"start","id":"abc","from":"busybox","Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"image":"busybox","name":"web"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#
        );
        let v = event("volume", "create", "data", &[("driver", "local")]);
        assert!(serde_json::to_string(&v).unwrap().starts_with(r#"{"Type":"volume""#));
    }

    #[test]
    fn filters_like_docker() {
        let start = event("container", "start", "abcdef", &[("image", "busybox:latest"), ("name", "web"), ("tier", "front")]);
        let health = event("container", "health_status: healthy", "abcdef", &[("image", "busybox"), ("name", "web")]);
        let vol = event("volume", "create", "data", &[("driver", "local")]);
        assert!(filter(&[]).matches(&start));
        assert!(filter(&[("container", "web")]).matches(&start));
        assert!(filter(&[("container", "abc")]).matches(&start));
        assert!(!filter(&[("container", "db")]).matches(&start));
        assert!(!filter(&[("container", "web")]).matches(&vol));
        assert!(filter(&[("event", "start"), ("event", "die")]).matches(&start));
        assert!(!filter(&[("event", "die")]).matches(&start));
        assert!(filter(&[("event", "health_status")]).matches(&health));
        assert!(filter(&[("image", "busybox")]).matches(&start));
        assert!(filter(&[("label", "tier=front")]).matches(&start));
        assert!(!filter(&[("label", "tier=back")]).matches(&start));
        assert!(filter(&[("type", "volume"), ("volume", "data")]).matches(&vol));
        assert!(!filter(&[("type", "volume")]).matches(&start));
        assert!(EventFilter::new(HashMap::from([("bogus".to_string(), vec![])])).is_err());
    }

    #[test]
    fn replays_since_and_follows() {
        let log = EventLog::default();
        log.publish("volume", "create", "a", BTreeMap::new());
        let (past, mut rx) = log.subscribe(Some(0));
        assert_eq!(past.len(), 1);
        log.publish("volume", "destroy", "a", BTreeMap::new());
        assert_eq!(rx.try_recv().unwrap().action, "destroy");
        let (past, _) = log.subscribe(None);
        assert!(past.is_empty());
    }
}
