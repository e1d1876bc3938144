//! The control plane: every change to a flag set is a [`Command`] sent to its one writer
//! (the `FlagWriter` Durable Object, `host/flags/writer.rs`), which decides it here against the
//! committed head in one synchronous step and commits document, history entry and audit
//! record together. This module is the wire contract between the worker and the writer;
//! `write` decides, `strict` checks what an admin writes, `precondition` reads `If-Match`.

pub(crate) mod precondition;
pub(crate) mod strict;
pub(crate) mod write;

use serde::{Deserialize, Serialize};

use crate::flags::admin::FlagPatch;
use crate::flags::live::{Finding, Problem};
use crate::flags::store::{AuditRecord, Purge};
use crate::measure::rollout::Decision;

/// One change, as the worker asks the writer for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub(crate) enum Command {
    /// `PUT {prefix}/flags`: replace the whole document.
    Replace { document: String },
    /// `PATCH {prefix}/flags/{key}`.
    Patch { flag: String, patch: FlagPatch },
    /// The kill switch (`enabled: false`) and its reverse.
    SetState { flag: String, enabled: bool },
    /// Make a version from the history active again.
    Rollback { version: String },
    /// Record a cache purge (every location honours it).
    Purge { purge: Purge },
    /// The rollout controller's decision for one flag; `seen` is the fingerprint of the
    /// flag's definition the decision was made from ([`flag_fingerprint`]).
    Rollout {
        flag: String,
        decision: Decision,
        seen: String,
    },
    /// `POST {prefix}/rollouts/{flag}/resume`: restart a paused rollout's current stage.
    Resume { flag: String },
}

/// A command with who sends it and its precondition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Request {
    /// Token name (admin), `rollout (cron)`, `kv`.
    pub(crate) actor: String,
    /// The raw `If-Match` header, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) if_match: Option<String>,
    pub(crate) command: Command,
}

/// The writer's answer to a command that did not fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Answer {
    /// The head after the command.
    pub(crate) version: Option<String>,
    pub(crate) previous_version: Option<String>,
    /// Whether a new version (or purge record) was committed.
    pub(crate) committed: bool,
    /// The audit action of what was committed (`patch`, `rollout-pause`, `purge`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) action: Option<String>,
    /// What happened, in one line (also the audit summary when committed).
    pub(crate) summary: String,
    /// Schema deviations flagd would still evaluate, with their paths.
    #[serde(default)]
    pub(crate) warnings: Vec<Finding>,
}

/// `POST /head`: what an isolate has; the writer answers what changed since.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HeadQuery {
    /// The version the isolate serves.
    #[serde(default)]
    pub(crate) have: Option<String>,
    /// The purge sequence number the isolate has.
    #[serde(default)]
    pub(crate) purges_seq: Option<u64>,
}

/// The writer's head, with the document and purge list only when the isolate lacks them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HeadAnswer {
    pub(crate) version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) document: Option<String>,
    pub(crate) purges_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) purges: Option<Vec<Purge>>,
    /// The last document written straight into KV that the writer refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kv_refused: Option<Problem>,
}

/// One version in the writer's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HistoryEntry {
    pub(crate) version: String,
    pub(crate) activated_at_ms: u64,
}

/// `GET {prefix}/versions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Versions {
    pub(crate) current: Option<String>,
    pub(crate) versions: Vec<HistoryEntry>,
}

/// `GET {prefix}/audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Audit {
    pub(crate) records: Vec<AuditRecord>,
}

/// A short, stable fingerprint of one flag's definition in a document (`None` when the
/// flag is absent). The writer compares it to tell whether a person changed the flag.
pub(crate) fn flag_fingerprint(document: &serde_json::Value, flag: &str) -> Option<String> {
    let definition = document.get("flags")?.get(flag)?;
    Some(crate::flags::store::version_of(&definition.to_string()))
}
