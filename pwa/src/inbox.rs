//! In-app inbox policy: what a page's `GET <inboxPath>` gets from the service worker — the
//! edge's inbox (fresh online, the last good copy offline, nothing when neither exists) plus
//! the items pushed to this browser that the copy does not list yet, with the read marks
//! still waiting in the outbox applied. The edge's copy is the truth for every item it
//! lists (read state included); a pushed item is kept here only until a copy lists it.

use serde_json::{Map, Value};

use crate::notify::Notice;
use crate::routing::path_of;

/// Pushed items kept at most (newest first); older ones are dropped beyond this. Each is
/// normally forgotten as soon as an inbox copy lists it (only pushes marked `"inbox": true`
/// are kept, `crate::notify::Notice::id`), so this only bounds items no copy lists yet — or
/// ever, when the visitor left the audience before their first online read.
pub const MAX_PUSHED: usize = 50;

/// The inbox item a push carries, when its payload names the item's `id` and marks it
/// `"inbox": true` (the edge does when the notification went to the inbox): the notice's fields (title, body, tag, same-origin
/// absolute URL), received now, unread.
pub fn item(n: &Notice, now_ms: f64) -> Option<Value> {
    n.id.as_deref().filter(|id| !id.is_empty())?;
    let mut map = n.to_map();
    map.insert("createdAt".into(), Value::from(now_ms as u64));
    map.insert("read".into(), Value::Bool(false));
    Some(Value::Object(map))
}

fn id(item: &Value) -> Option<&str> {
    item.get("id")?.as_str()
}

/// Keeps a pushed item, newest first, unless one with its id is kept already (a push
/// delivered twice is one item). Returns whether the list changed.
pub fn remember(pushed: &mut Vec<Value>, item: Value) -> bool {
    if pushed.iter().any(|p| id(p) == id(&item)) {
        return false;
    }
    pushed.insert(0, item);
    pushed.truncate(MAX_PUSHED);
    true
}

/// The inbox the page gets: `base` (the body of the edge's `200`, fresh or stored; `None`
/// when there is neither) with the pushed items it does not list first, and every item a
/// pending outbox write `POST <inbox_path>/{id}/read` names marked read; `unread` counted
/// again. Pushed items that `base` lists are dropped from `pushed` (the edge's copy wins).
pub fn merge(
    base: Option<&str>,
    pushed: &mut Vec<Value>,
    outbox: &Value,
    inbox_path: &str,
) -> Value {
    let mut base: Value = base
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let listed = match base.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    pushed.retain(|p| !listed.iter().any(|i| id(i) == id(p)));
    let marks = read_marks(outbox, inbox_path);
    let mut items = Vec::new();
    let mut unread = 0u64;
    for mut i in pushed.iter().cloned().chain(listed) {
        let marked = id(&i).is_some_and(|id| marks.contains(&id));
        if let (true, Some(m)) = (marked, i.as_object_mut()) {
            m.insert("read".into(), Value::Bool(true));
        }
        if i.get("read").and_then(Value::as_bool) != Some(true) {
            unread += 1;
        }
        items.push(i);
    }
    let mut out = Map::new();
    out.insert("items".into(), Value::Array(items));
    out.insert("unread".into(), Value::from(unread));
    Value::Object(out)
}

/// Ids of the read marks still to be sent: outbox entries (the worker's outbox state
/// message) `POST <inbox_path>/{id}/read` that are not held (a held one was refused).
fn read_marks<'a>(outbox: &'a Value, inbox_path: &str) -> Vec<&'a str> {
    let mut ids = Vec::new();
    for e in outbox
        .get("entries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pending = e.get("held").is_none_or(Value::is_null)
            && e.get("method").and_then(Value::as_str) == Some("POST");
        let id = e
            .get("url")
            .and_then(Value::as_str)
            .and_then(|u| {
                path_of(u)
                    .strip_prefix(inbox_path)?
                    .strip_prefix('/')?
                    .strip_suffix("/read")
            })
            .filter(|id| !id.is_empty() && !id.contains('/'));
        if let (true, Some(id)) = (pending, id) {
            ids.push(id);
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const O: &str = "http://127.0.0.1:8787";
    const INBOX: &str = "/__edge/inbox";

    fn notice(id: Option<&str>) -> Notice {
        Notice {
            id: id.map(str::to_owned),
            title: "Order shipped".into(),
            body: Some("#12 is on its way".into()),
            icon: None,
            tag: Some("o12".into()),
            url: format!("{O}/?order=12"),
        }
    }

    fn ids(inbox: &Value) -> Vec<&str> {
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect()
    }

    fn outbox(entries: Value) -> Value {
        json!({"type": "edgeflags:outbox", "count": 0, "entries": entries})
    }

    #[test]
    fn a_push_with_an_id_is_an_unread_item_and_one_without_is_none() {
        assert_eq!(
            item(&notice(Some("n1")), 1_700_000_000_123.0),
            Some(json!({
                "id": "n1", "title": "Order shipped", "body": "#12 is on its way",
                "url": format!("{O}/?order=12"), "tag": "o12", "createdAt": 1_700_000_000_123_u64,
                "read": false,
            }))
        );
        assert_eq!(item(&notice(None), 1.0), None);
        assert_eq!(item(&notice(Some("")), 1.0), None);
    }

    #[test]
    fn pushed_items_are_kept_newest_first_once_per_id_and_bounded() {
        let mut pushed = Vec::new();
        assert!(remember(&mut pushed, json!({"id": "a"})));
        assert!(remember(&mut pushed, json!({"id": "b"})));
        assert!(!remember(&mut pushed, json!({"id": "a", "title": "again"})));
        assert_eq!(pushed, vec![json!({"id": "b"}), json!({"id": "a"})]);
        for n in 0..MAX_PUSHED {
            remember(&mut pushed, json!({ "id": n.to_string() }));
        }
        assert_eq!(pushed.len(), MAX_PUSHED);
        assert_eq!(pushed[0]["id"], (MAX_PUSHED - 1).to_string());
    }

    #[test]
    fn the_edge_copy_wins_for_the_items_it_lists_and_pushed_ones_it_lacks_come_first() {
        let base = r#"{"items":[{"id":"a","title":"A","read":true},{"id":"b","title":"B","read":false}],"unread":1}"#;
        let mut pushed = vec![
            json!({"id": "c", "title": "C", "read": false}),
            json!({"id": "a", "title": "A (pushed)", "read": false}),
        ];
        let inbox = merge(Some(base), &mut pushed, &outbox(json!([])), INBOX);
        assert_eq!(ids(&inbox), ["c", "a", "b"]);
        assert_eq!(inbox["items"][1]["title"], "A", "the edge's copy of a");
        assert_eq!(inbox["items"][1]["read"], true);
        assert_eq!(inbox["unread"], 2);
        assert_eq!(
            pushed,
            vec![json!({"id": "c", "title": "C", "read": false})]
        );
    }

    #[test]
    fn without_any_copy_the_pushed_items_are_the_inbox() {
        let mut pushed = vec![json!({"id": "c", "read": false})];
        for base in [None, Some("not json"), Some(r#"{"items":7}"#)] {
            let inbox = merge(base, &mut pushed, &Value::Null, INBOX);
            assert_eq!(
                inbox,
                json!({"items": [{"id": "c", "read": false}], "unread": 1})
            );
        }
        let inbox = merge(None, &mut Vec::new(), &Value::Null, INBOX);
        assert_eq!(inbox, json!({"items": [], "unread": 0}));
    }

    #[test]
    fn read_marks_waiting_in_the_outbox_are_applied_and_held_or_other_writes_are_not() {
        let base = r#"{"items":[{"id":"a","read":false},{"id":"b","read":false},{"id":"c","read":false},{"id":"d","read":false}],"unread":4}"#;
        let mut pushed = vec![json!({"id": "p", "read": false})];
        let entries = json!([
            {"method": "POST", "url": format!("{O}{INBOX}/a/read"), "held": null},
            {"method": "POST", "url": format!("{O}{INBOX}/p/read?x=1")},
            {"method": "POST", "url": format!("{O}{INBOX}/b/read"), "held": "answer"},
            {"method": "DELETE", "url": format!("{O}{INBOX}/c/read")},
            {"method": "POST", "url": format!("{O}{INBOX}/d/x/read")},
            {"method": "POST", "url": format!("{O}/api/orders")},
        ]);
        let inbox = merge(Some(base), &mut pushed, &outbox(entries), INBOX);
        let read: Vec<bool> = inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["read"] == true)
            .collect();
        assert_eq!(ids(&inbox), ["p", "a", "b", "c", "d"]);
        assert_eq!(read, [true, true, false, false, false]);
        assert_eq!(inbox["unread"], 3);
    }
}
