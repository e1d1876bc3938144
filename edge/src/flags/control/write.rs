//! The writer's decision for one command, against the committed head: what to commit (a new
//! document, or a purge record) or why nothing changes. Pure: the Durable Object supplies the
//! head, the history and the rollout marks, and stores what this returns in one transaction.
//!
//! Rules that make concurrent writers safe:
//! - the precondition (`If-Match`) is checked against the head, not a cached read;
//! - a patch, the kill switch and a rollout decision are applied to the head document, so
//!   changes to different flags never overwrite each other;
//! - the rollout controller never changes a flag's `state`, writes nothing to a disabled flag,
//!   and pauses a started rollout whose flag a person changed since the controller's last
//!   write (its *mark*, the flag's fingerprint after that write).

use serde_json::Value;

use super::{flag_fingerprint, precondition, strict, Command, Request};
use crate::error::EdgeError;
use crate::flags::admin::{self, Change, Scope};
use crate::flags::live::Finding;
use crate::flags::store::{version_of, Purge};
use crate::measure::rollout::{self, Decision};

/// The committed head, as the writer holds it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head<'a> {
    pub(crate) version: &'a str,
    pub(crate) document: &'a str,
}

/// What the writer knows besides the head.
pub(crate) trait History {
    /// The document of a version in the bounded history.
    fn document(&self, version: &str) -> Option<String>;
    /// The flag's fingerprint after the controller's last write to it.
    fn mark(&self, flag: &str) -> Option<String>;
}

/// A new head to commit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Commit {
    pub(crate) document: String,
    pub(crate) version: String,
    /// The audit action (`replace`, `patch`, `disable`, `rollout-advance`, …).
    pub(crate) action: String,
    pub(crate) flag: Option<String>,
    pub(crate) summary: String,
    pub(crate) warnings: Vec<Finding>,
    /// A new rollout mark: (flag, fingerprint of its definition in `document`).
    pub(crate) mark: Option<(String, String)>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Commit(Commit),
    /// Add a purge record (audited; the document is unchanged).
    Purge {
        purge: Purge,
        summary: String,
    },
    /// Nothing to store; why.
    Unchanged(String),
}

/// Decides `request` against `head` (None: nothing committed yet).
pub(crate) fn decide(
    head: Option<Head<'_>>,
    request: &Request,
    history: &impl History,
    now_ms: u64,
) -> Result<Outcome, EdgeError> {
    precondition::check(request.if_match.as_deref(), head.map(|h| h.version))?;
    let head_doc = || {
        head.map(|h| h.document)
            .ok_or_else(|| EdgeError::NoFlagSet("no flag set has been stored yet".into()))
    };
    let (change, action, flag) = match &request.command {
        Command::Replace { document } => {
            // Every finding at once, the write rules' and the core's, so one round of fixes
            // is enough.
            let mut findings = strict::check(&parse(document)?);
            if let Err(EdgeError::InvalidFlagSet(core)) = admin::validate(document, Scope::All) {
                findings.extend(core);
            }
            refuse_if_any(findings)?;
            let change = Change {
                summary: format!("replaced the flag set ({} bytes)", document.len()),
                document: document.clone(),
            };
            (change, "replace".to_owned(), None)
        }
        Command::Patch { flag, patch } => {
            let change = admin::patch_flag(head_doc()?, flag, patch)?;
            // Only the patched flag is held to the write rules: a kill switch or a patch must
            // not be refused over another flag's old, hand-written mistake.
            let prefix = format!("flags.{flag}");
            refuse_if_any(
                strict::check(&parse(&change.document)?)
                    .into_iter()
                    .filter(|f| f.path == prefix || f.path.starts_with(&format!("{prefix}.")))
                    .collect(),
            )?;
            (change, "patch".to_owned(), Some(flag.clone()))
        }
        Command::SetState { flag, enabled } => {
            let change = admin::set_state(head_doc()?, flag, *enabled)?;
            let action = if *enabled { "enable" } else { "disable" };
            (change, action.to_owned(), Some(flag.clone()))
        }
        Command::Rollback { version } => {
            let document = history.document(version).ok_or_else(|| {
                EdgeError::NotFound(format!("version {version} is not in the history"))
            })?;
            let change = Change {
                document,
                summary: format!("rolled back to version {version}"),
            };
            (change, "rollback".to_owned(), None)
        }
        Command::Purge { purge } => {
            let what = match (&purge.url, &purge.prefix) {
                (Some(url), _) => format!("purged the cache for {url}"),
                (_, Some(prefix)) => format!("purged the cache under {prefix}"),
                _ => {
                    return Err(EdgeError::BadRequest(
                        "a purge names a url or a prefix".into(),
                    ))
                }
            };
            return Ok(Outcome::Purge {
                purge: purge.clone(),
                summary: what,
            });
        }
        Command::Rollout {
            flag,
            decision,
            seen,
        } => {
            let head =
                head.ok_or_else(|| EdgeError::NoFlagSet("no flag set has been stored yet".into()))?;
            return rollout_write(head, flag, decision, seen, history, now_ms);
        }
        Command::Resume { flag } => {
            let text = head_doc()?;
            let doc = parse(text)?;
            let paused = rollout::plans(&doc)
                .map_err(EdgeError::InvalidFlagSet)?
                .into_iter()
                .any(|(p, s)| p.flag == *flag && s.status == rollout::Status::Paused);
            if !paused {
                return Err(EdgeError::Conflict(format!(
                    "flag {flag:?} has no paused rollout"
                )));
            }
            let reason = format!(
                "resumed by {}: the current stage starts again",
                request.actor
            );
            let change = rollout::resume(text, flag, &reason, now_ms)?;
            return marked(
                commit(head, change, "rollout-resume", Some(flag.clone()))?,
                flag,
            );
        }
    };
    commit(head, change, &action, flag)
}

/// Decides whether a document found in KV that the writer has never seen becomes the head
/// (actor `kv`): it must load as a flag set; what it loads with is reported as warnings.
pub(crate) fn adopt(head: Option<Head<'_>>, document: &str) -> Result<Outcome, EdgeError> {
    let action = if head.is_none() { "import" } else { "adopt" };
    let change = Change {
        document: document.to_owned(),
        summary: format!(
            "{} the document written straight into KV ({} bytes)",
            if head.is_none() {
                "imported"
            } else {
                "adopted"
            },
            document.len()
        ),
    };
    commit(head, change, action, None)
}

/// Validates the new document (core + rollout plans) and builds the commit, or `Unchanged`
/// when it is the head already.
fn commit(
    head: Option<Head<'_>>,
    change: Change,
    action: &str,
    flag: Option<String>,
) -> Result<Outcome, EdgeError> {
    // Answerable for: a replacement for every flag, a one-flag change for that flag, a
    // rollback or a hand-written KV document only for loading at all (see `Scope`).
    let scope = match (action, flag.as_deref()) {
        ("replace", _) => Scope::All,
        (_, Some(flag)) => Scope::Flag(flag),
        (_, None) => Scope::Nothing,
    };
    let warnings = admin::validate(&change.document, scope)?;
    let version = version_of(&change.document);
    if head.is_some_and(|h| h.version == version) {
        return Ok(Outcome::Unchanged(format!(
            "no change: version {version} is already active"
        )));
    }
    Ok(Outcome::Commit(Commit {
        document: change.document,
        version,
        action: action.to_owned(),
        flag,
        summary: change.summary,
        warnings,
        mark: None,
    }))
}

fn rollout_write(
    head: Head<'_>,
    flag: &str,
    decision: &Decision,
    seen: &str,
    history: &impl History,
    now_ms: u64,
) -> Result<Outcome, EdgeError> {
    let text = head.document;
    let doc = parse(text)?;
    let Some(current) = flag_fingerprint(&doc, flag) else {
        return Ok(Outcome::Unchanged(format!(
            "flag {flag:?} no longer exists"
        )));
    };
    let enabled = doc.pointer(&format!("/flags/{}/state", pointer_escape(flag)))
        == Some(&Value::from("ENABLED"));
    let started = !matches!(decision, Decision::Start { .. });
    if started && history.mark(flag).is_some_and(|mark| mark != current) {
        let reason = if enabled {
            "paused: a person changed the flag since the last rollout decision"
        } else {
            "paused: the flag was disabled since the last rollout decision (kill switch)"
        };
        let change = rollout::pause(text, flag, reason)?;
        return marked(
            commit(Some(head), change, "rollout-pause", Some(flag.to_owned()))?,
            flag,
        );
    }
    if current != seen {
        return Ok(Outcome::Unchanged(
            "not written: the flag changed while the decision was made; it is decided again \
             at the next evaluation"
                .into(),
        ));
    }
    if !enabled {
        return Ok(Outcome::Unchanged(
            "not written: the flag is disabled, and the rollout never changes a disabled flag"
                .into(),
        ));
    }
    let plan = rollout::plans(&doc)
        .map_err(EdgeError::InvalidFlagSet)?
        .into_iter()
        .find(|(p, _)| p.flag == flag)
        .map(|(p, _)| p)
        .ok_or_else(|| EdgeError::Conflict(format!("flag {flag:?} has no rollout plan")))?;
    let Some(change) = rollout::apply(text, &plan, decision, now_ms)? else {
        return Ok(Outcome::Unchanged(
            "nothing to write for this decision".into(),
        ));
    };
    let action = match decision {
        Decision::Rollback { .. } => "rollout-rollback",
        Decision::Complete { .. } => "rollout-complete",
        Decision::Start { .. } => "rollout-start",
        _ => "rollout-advance",
    };
    marked(
        commit(Some(head), change, action, Some(flag.to_owned()))?,
        flag,
    )
}

/// Sets the rollout mark of a controller (or resume) commit: the flag as it now stands.
fn marked(mut out: Outcome, flag: &str) -> Result<Outcome, EdgeError> {
    if let Outcome::Commit(c) = &mut out {
        c.mark = flag_fingerprint(&parse(&c.document)?, flag).map(|f| (flag.to_owned(), f));
    }
    Ok(out)
}

fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn parse(text: &str) -> Result<Value, EdgeError> {
    serde_json::from_str(text).map_err(|e| {
        EdgeError::InvalidFlagSet(vec![Finding {
            path: String::new(),
            message: format!("not JSON: {e}"),
        }])
    })
}

fn refuse_if_any(findings: Vec<Finding>) -> Result<(), EdgeError> {
    if findings.is_empty() {
        Ok(())
    } else {
        Err(EdgeError::InvalidFlagSet(findings))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::flags::admin::FlagPatch;

    const DOC: &str = r#"{"flags":{
        "a":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"},
        "b":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"},
        "backend":{"state":"ENABLED","variants":{"v1":"v1","v2":"v2"},"defaultVariant":"v1",
          "targeting":{"fractional":[["v1",90],["v2",10]]},
          "metadata":{"rollout.stages":"10,50,100","rollout.stage":0,"rollout.stageStartedAt":1,
                      "rollout.minDurationSeconds":0,"rollout.minSample":1}}}}"#;

    #[derive(Default)]
    struct Known {
        documents: HashMap<String, String>,
        marks: HashMap<String, String>,
    }

    impl History for Known {
        fn document(&self, version: &str) -> Option<String> {
            self.documents.get(version).cloned()
        }
        fn mark(&self, flag: &str) -> Option<String> {
            self.marks.get(flag).cloned()
        }
    }

    fn req(command: Command) -> Request {
        Request {
            actor: "alice".into(),
            if_match: None,
            command,
        }
    }

    /// Runs a command against a head document; the committed document, or the outcome.
    fn run(document: &str, request: &Request, known: &Known) -> Result<Outcome, EdgeError> {
        let version = version_of(document);
        let head = Head {
            version: &version,
            document,
        };
        decide(Some(head), request, known, 1_000)
    }

    fn committed(out: Result<Outcome, EdgeError>) -> Commit {
        match out {
            Ok(Outcome::Commit(c)) => c,
            other => panic!("expected a commit, got {other:?}"),
        }
    }

    fn flag(document: &str, key: &str) -> Value {
        serde_json::from_str::<Value>(document).unwrap()["flags"][key].clone()
    }

    fn patch_default(flag: &str, variant: &str) -> Command {
        Command::Patch {
            flag: flag.into(),
            patch: FlagPatch {
                default_variant: Some(json!(variant)),
                ..FlagPatch::default()
            },
        }
    }

    #[test]
    fn patches_of_different_flags_applied_in_turn_both_survive() {
        let known = Known::default();
        let first = committed(run(DOC, &req(patch_default("a", "on")), &known));
        let second = committed(run(&first.document, &req(patch_default("b", "on")), &known));
        assert_eq!(flag(&second.document, "a")["defaultVariant"], "on");
        assert_eq!(flag(&second.document, "b")["defaultVariant"], "on");
    }

    #[test]
    fn of_writers_holding_the_same_if_match_only_the_first_wins() {
        let known = Known::default();
        let v0 = version_of(DOC);
        let mut r = req(patch_default("a", "on"));
        r.if_match = Some(format!("\"{v0}\""));
        let first = committed(run(DOC, &r, &known));
        let mut r2 = req(patch_default("b", "on"));
        r2.if_match = Some(format!("\"{v0}\""));
        assert_eq!(
            run(&first.document, &r2, &known),
            Err(EdgeError::PreconditionFailed {
                current: first.version.clone()
            })
        );
        r2.if_match = Some(format!("\"{v0}\", \"{}\"", first.version));
        committed(run(&first.document, &r2, &known));
    }

    #[test]
    fn writing_the_active_document_again_commits_nothing() {
        let out = run(
            DOC,
            &req(Command::Replace {
                document: DOC.into(),
            }),
            &Known::default(),
        );
        assert!(matches!(out, Ok(Outcome::Unchanged(_))), "{out:?}");
    }

    #[test]
    fn a_replacement_reports_write_rule_and_core_errors_together() {
        let bad = r#"{"flags":{"a":{"state":"disabled","variants":{"x":1},"defaultVariant":"y"}}}"#;
        match run(
            DOC,
            &req(Command::Replace {
                document: bad.into(),
            }),
            &Known::default(),
        ) {
            Err(EdgeError::InvalidFlagSet(f)) => {
                let paths: Vec<&str> = f.iter().map(|f| f.path.as_str()).collect();
                assert!(paths.contains(&"flags.a.state"), "{paths:?}");
                assert!(paths.contains(&"flags.a.defaultVariant"), "{paths:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_kill_switch_works_even_when_another_flag_breaks_the_write_rules() {
        let legacy = DOC
            .replace(
                r#""b":{"state":"ENABLED""#,
                r#""b":{"state":"ENABLED","metadata":{}"#,
            )
            .replace(
                r#""on":true,"off":false},"defaultVariant":"off"},
        "backend""#,
                r#""o n":true,"off":false},"defaultVariant":"off"},
        "backend""#,
            );
        assert!(!strict::check(&serde_json::from_str(&legacy).unwrap()).is_empty());
        let off = committed(run(
            &legacy,
            &req(Command::SetState {
                flag: "a".into(),
                enabled: false,
            }),
            &Known::default(),
        ));
        assert_eq!(flag(&off.document, "a")["state"], "DISABLED");
        assert_eq!(off.action, "disable");
    }

    #[test]
    fn a_rollback_needs_a_version_in_the_history() {
        let mut known = Known::default();
        let old = DOC.replace("\"defaultVariant\":\"off\"", "\"defaultVariant\":\"on\"");
        known.documents.insert(version_of(&old), old.clone());
        let back = committed(run(
            DOC,
            &req(Command::Rollback {
                version: version_of(&old),
            }),
            &known,
        ));
        assert_eq!(back.document, old);
        assert!(matches!(
            run(
                DOC,
                &req(Command::Rollback {
                    version: "ffff".into()
                }),
                &known
            ),
            Err(EdgeError::NotFound(_))
        ));
    }

    fn advance() -> Decision {
        Decision::Advance {
            stage: 1,
            percent: 50,
            reason: "healthy".into(),
        }
    }

    fn seen(document: &str) -> String {
        flag_fingerprint(&serde_json::from_str(document).unwrap(), "backend").unwrap()
    }

    fn rollout(document: &str, decision: Decision) -> Request {
        Request {
            actor: "rollout (cron)".into(),
            if_match: None,
            command: Command::Rollout {
                flag: "backend".into(),
                decision,
                seen: seen(document),
            },
        }
    }

    #[test]
    fn a_rollout_decision_is_applied_to_the_head_and_leaves_its_mark() {
        let mut known = Known::default();
        known.marks.insert("backend".into(), seen(DOC));
        let c = committed(run(DOC, &rollout(DOC, advance()), &known));
        assert_eq!(
            flag(&c.document, "backend")["targeting"],
            json!({"fractional":[["v1",50],["v2",50]]})
        );
        assert_eq!(c.action, "rollout-advance");
        assert_eq!(c.mark, Some(("backend".into(), seen(&c.document))));
    }

    #[test]
    fn the_rollout_never_writes_to_a_disabled_flag() {
        // Disabled before the controller ever wrote (no mark): nothing is written.
        let r = rollout(DOC, Decision::Start { percent: 10 });
        let off = committed(run(
            DOC,
            &req(Command::SetState {
                flag: "backend".into(),
                enabled: false,
            }),
            &Known::default(),
        ));
        // The decision was made from the enabled flag; the head is disabled now.
        let out = run(&off.document, &r, &Known::default()).unwrap();
        assert!(
            matches!(&out, Outcome::Unchanged(why) if why.contains("changed")),
            "{out:?}"
        );
        let fresh = rollout(&off.document, Decision::Start { percent: 10 });
        let out = run(&off.document, &fresh, &Known::default()).unwrap();
        assert!(
            matches!(&out, Outcome::Unchanged(why) if why.contains("disabled")),
            "{out:?}"
        );
    }

    #[test]
    fn a_started_rollout_whose_flag_a_person_changed_is_paused_not_advanced() {
        let mut known = Known::default();
        known.marks.insert("backend".into(), seen(DOC));
        for (what, command) in [
            (
                "disabled",
                Command::SetState {
                    flag: "backend".into(),
                    enabled: false,
                },
            ),
            ("changed", patch_default("backend", "v2")),
        ] {
            let person = committed(run(DOC, &req(command), &known));
            let c = committed(run(
                &person.document,
                &rollout(&person.document, advance()),
                &known,
            ));
            let after = flag(&c.document, "backend");
            assert_eq!(after["metadata"]["rollout.status"], "paused", "{what}");
            assert!(
                after["metadata"]["rollout.reason"]
                    .as_str()
                    .unwrap()
                    .contains(what),
                "{what}: {after}"
            );
            assert_eq!(
                after["state"],
                flag(&person.document, "backend")["state"],
                "{what}"
            );
            assert_eq!(
                after["targeting"],
                flag(DOC, "backend")["targeting"],
                "{what}: split kept"
            );
            assert_eq!(c.action, "rollout-pause");

            // Resuming restarts the stage and takes the flag as it now is for the mark.
            let resumed = committed(run(
                &c.document,
                &req(Command::Resume {
                    flag: "backend".into(),
                }),
                &known,
            ));
            let meta = &flag(&resumed.document, "backend")["metadata"];
            assert_eq!(meta["rollout.status"], "running");
            assert_eq!(meta["rollout.stageStartedAt"], 1_000);
            assert_eq!(
                resumed.mark,
                Some(("backend".into(), seen(&resumed.document)))
            );
        }
        assert!(matches!(
            run(
                DOC,
                &req(Command::Resume {
                    flag: "backend".into()
                }),
                &known
            ),
            Err(EdgeError::Conflict(_))
        ));
    }

    #[test]
    fn a_kv_document_is_imported_first_and_adopted_later_only_if_it_loads() {
        let imported = match adopt(None, DOC).unwrap() {
            Outcome::Commit(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(imported.action, "import");
        let version = version_of(DOC);
        let head = Head {
            version: &version,
            document: DOC,
        };
        assert!(matches!(
            adopt(Some(head), "{not json"),
            Err(EdgeError::InvalidFlagSet(_))
        ));
        assert!(matches!(
            adopt(Some(head), r#"{"flags":[]}"#),
            Err(EdgeError::InvalidFlagSet(_))
        ));
    }

    /// A document with one broken flag, as flagd would still load it (e.g. written by hand).
    fn partly_broken() -> String {
        DOC.replace(
            r#""b":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}"#,
            r#""b":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off","targeting":{"no-such-op":[1]}}"#,
        )
    }

    #[test]
    fn a_change_to_one_flag_answers_only_for_that_flag() {
        let doc = partly_broken();
        // The kill switch and a patch of another flag go through; b's error is a warning.
        let off = committed(run(
            &doc,
            &req(Command::SetState {
                flag: "a".into(),
                enabled: false,
            }),
            &Known::default(),
        ));
        assert!(
            off.warnings.iter().any(|w| w.path.starts_with("flags.b")),
            "{:?}",
            off.warnings
        );
        committed(run(&doc, &req(patch_default("a", "on")), &Known::default()));
        // A patch that breaks the flag it changes is refused with the path.
        let breaking = Command::Patch {
            flag: "a".into(),
            patch: serde_json::from_str(r#"{"targeting":{"no-such-op":[]}}"#).unwrap(),
        };
        match run(&doc, &req(breaking), &Known::default()) {
            Err(EdgeError::InvalidFlagSet(f)) => {
                assert!(f.iter().all(|f| f.path.starts_with("flags.a")), "{f:?}")
            }
            other => panic!("{other:?}"),
        }
        // A replacement answers for every flag.
        let replace = Command::Replace {
            document: doc.clone(),
        };
        assert!(matches!(
            run(DOC, &req(replace), &Known::default()),
            Err(EdgeError::InvalidFlagSet(_))
        ));
    }

    #[test]
    fn a_kv_document_with_one_broken_flag_is_adopted_with_it_as_a_warning() {
        let version = version_of(DOC);
        let head = Head {
            version: &version,
            document: DOC,
        };
        match adopt(Some(head), &partly_broken()).unwrap() {
            Outcome::Commit(c) => {
                assert_eq!(c.action, "adopt");
                assert!(
                    c.warnings.iter().any(|w| w.path.starts_with("flags.b")),
                    "{:?}",
                    c.warnings
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn commands_and_answers_survive_the_wire() {
        let commands = vec![
            patch_default("a", "on"),
            Command::Patch {
                flag: "a".into(),
                patch: serde_json::from_str(r#"{"targeting":null}"#).unwrap(),
            },
            Command::Rollout {
                flag: "backend".into(),
                decision: advance(),
                seen: "x".into(),
            },
        ];
        for c in commands {
            let r = req(c);
            let text = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r, "{text}");
        }
        let e = EdgeError::PreconditionFailed {
            current: "v".into(),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<EdgeError>(&text).unwrap(), e);
    }
}
