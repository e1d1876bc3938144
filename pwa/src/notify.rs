//! Notifications policy: a `push` payload becomes a notification (title, body, icon, tag,
//! target URL), and a click focuses the tab already showing the target, else steers an open
//! tab of the app there, else opens it.

use serde_json::{Map, Value};

use crate::config::NotificationsConfig;
use crate::routing::same_origin;

/// A notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The in-app inbox item the push stands for (`crate::inbox`): the payload's `id` when it
    /// says `"inbox": true` (sent on the edge's `inapp` channel too, so its inbox lists the
    /// item and the kept copy is dropped once it does). A push-only message is no item.
    pub id: Option<String>,
    pub title: String,
    pub body: Option<String>,
    pub icon: Option<String>,
    pub tag: Option<String>,
    /// Absolute, same-origin URL a click leads to.
    pub url: String,
}

/// Reads a push payload: a JSON object `{"id", "title", "body", "icon", "tag", "url"}` (every
/// field optional), or plain text used as the body. The target URL must be on the app's
/// origin; anything else falls back to the configured default.
pub fn from_payload(text: Option<&str>, cfg: &NotificationsConfig, origin: &str) -> Notice {
    let json: Option<Value> = text
        .and_then(|t| serde_json::from_str(t).ok())
        .filter(Value::is_object);
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let body = match &json {
        Some(_) => field("body"),
        None => text.map(str::to_owned).filter(|t| !t.is_empty()),
    };
    let default_url = absolute(origin, &cfg.default_url);
    let url = field("url")
        .map(|u| absolute(origin, &u))
        .filter(|u| same_origin(origin, u))
        .unwrap_or(default_url);
    Notice {
        id: field("id").filter(|_| {
            json.as_ref()
                .and_then(|j| j.get("inbox"))
                .and_then(Value::as_bool)
                == Some(true)
        }),
        title: field("title").unwrap_or_else(|| cfg.default_title.clone()),
        body,
        icon: field("icon").or_else(|| cfg.icon.clone()),
        tag: field("tag"),
        url,
    }
}

impl Notice {
    /// The notice as a JSON object with the fields it has (`id`, `title`, `body`, `icon`,
    /// `tag`, `url`): what the shim shows (`showNotification(title, {body, icon, tag,
    /// data: {url}})`; an absent field must be left out, not `null`, or it shows as text)
    /// and the base of the inbox item (`crate::inbox::item`).
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let fields = [
            ("id", self.id.as_ref()),
            ("title", Some(&self.title)),
            ("body", self.body.as_ref()),
            ("icon", self.icon.as_ref()),
            ("tag", self.tag.as_ref()),
            ("url", Some(&self.url)),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                map.insert(name.into(), Value::String(v.clone()));
            }
        }
        map
    }
}

fn absolute(origin: &str, url: &str) -> String {
    if url.contains("://") {
        url.to_owned()
    } else if url.starts_with('/') {
        format!("{origin}{url}")
    } else {
        format!("{origin}/{url}")
    }
}

/// What a click does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickAction {
    /// Focus the window at this index (it already shows the target).
    Focus(usize),
    /// Navigate the window at this index to the target, then focus it.
    Navigate(usize),
    /// Open a new window at the target.
    Open,
}

/// Picks the action for a click, given the URLs of the app's open windows.
pub fn on_click(windows: &[String], target: &str) -> ClickAction {
    let strip = |u: &str| u.split('#').next().unwrap_or(u).to_owned();
    let target = strip(target);
    if let Some(i) = windows.iter().position(|w| strip(w) == target) {
        return ClickAction::Focus(i);
    }
    match windows.first() {
        Some(_) => ClickAction::Navigate(0),
        None => ClickAction::Open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const O: &str = "http://127.0.0.1:8787";

    fn cfg() -> NotificationsConfig {
        NotificationsConfig {
            default_title: "Acme ERP".into(),
            icon: Some("/icon.svg".into()),
            default_url: "/".into(),
            inbox_path: None,
        }
    }

    #[test]
    fn json_payloads_fill_the_notification() {
        let n = from_payload(
            Some(
                r##"{"id":"n1","inbox":true,"title":"Order shipped","body":"#12 is on its way","tag":"o12","url":"/?order=12"}"##,
            ),
            &cfg(),
            O,
        );
        assert_eq!(
            n,
            Notice {
                id: Some("n1".into()),
                title: "Order shipped".into(),
                body: Some("#12 is on its way".into()),
                icon: Some("/icon.svg".into()),
                tag: Some("o12".into()),
                url: format!("{O}/?order=12"),
            }
        );
    }

    #[test]
    fn only_a_payload_marked_inbox_names_an_inbox_item() {
        for (payload, id) in [
            (r#"{"id":"n1","inbox":true,"title":"T"}"#, Some("n1")),
            (r#"{"id":"n1","title":"T"}"#, None),
            (r#"{"id":"n1","inbox":false,"title":"T"}"#, None),
            (r#"{"id":"n1","inbox":"true","title":"T"}"#, None),
        ] {
            assert_eq!(
                from_payload(Some(payload), &cfg(), O).id.as_deref(),
                id,
                "{payload}"
            );
        }
    }

    #[test]
    fn text_or_missing_payloads_get_defaults_and_foreign_urls_are_refused() {
        let n = from_payload(Some("hello"), &cfg(), O);
        assert_eq!(
            (n.title.as_str(), n.body.as_deref()),
            ("Acme ERP", Some("hello"))
        );
        let n = from_payload(None, &cfg(), O);
        assert_eq!((n.body, n.url), (None, format!("{O}/")));
        let n = from_payload(Some(r#"{"url":"https://evil.example/"}"#), &cfg(), O);
        assert_eq!(n.url, format!("{O}/"));
        let n = from_payload(Some("[1,2]"), &cfg(), O);
        assert_eq!(n.body.as_deref(), Some("[1,2]"));
    }

    #[test]
    fn a_click_focuses_the_tab_showing_the_target_else_reuses_or_opens_one() {
        let target = format!("{O}/?order=12");
        let tabs = vec![format!("{O}/"), format!("{O}/?order=12#top")];
        assert_eq!(on_click(&tabs, &target), ClickAction::Focus(1));
        assert_eq!(on_click(&tabs[..1], &target), ClickAction::Navigate(0));
        assert_eq!(on_click(&[], &target), ClickAction::Open);
    }

    #[test]
    fn the_shown_notification_leaves_out_what_the_payload_lacks() {
        let n = from_payload(Some(r#"{"title":"Hi","tag":"t"}"#), &cfg(), O);
        assert_eq!(
            Value::Object(n.to_map()),
            json!({"title": "Hi", "icon": "/icon.svg", "tag": "t", "url": format!("{O}/")})
        );
        let none = NotificationsConfig {
            icon: None,
            ..cfg()
        };
        assert_eq!(
            Value::Object(from_payload(None, &none, O).to_map()),
            json!({"title": "Acme ERP", "url": format!("{O}/")})
        );
    }
}
