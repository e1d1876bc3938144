//! Channels and the outcomes of their deliveries, in one place: every outcome the edge
//! records for a notification (a push answered, an e-mail accepted, an inbox item fetched
//! or read) is one of these, so a metrics recorder counts them from one hook
//! (`host::notify::observe`, which feeds `edgeflags_notifications_total{channel, outcome}`)
//! with the labels the status endpoint and `crate::measure::metrics` use.

use serde::{Deserialize, Serialize};

/// A notification channel, as named in `POST /notifications` `channels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Channel {
    Push,
    Inapp,
    Email,
}

impl Channel {
    pub(crate) const ALL: [Channel; 3] = [Channel::Push, Channel::Inapp, Channel::Email];

    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Inapp => "inapp",
            Self::Email => "email",
        }
    }

    /// The flag that gates the channel: it must evaluate to `true` (empty context, a plain
    /// on/off switch), so the kill switch turns the channel off at once — push: nothing is
    /// sent, queued messages included; in-app: the inbox shows nothing and takes nothing new;
    /// e-mail: nothing is queued, and queued e-mails end as failed ("channel off").
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Self::Push => "notifications.push",
            Self::Inapp => "notifications.inapp",
            Self::Email => "notifications.email",
        }
    }

    /// Whether deliveries go through the Queue (and can fail and be retried). The inbox is
    /// read, not sent.
    pub(crate) fn queued(self) -> bool {
        !matches!(self, Self::Inapp)
    }
}

/// What happened to one (notification, recipient) pair of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Outcome {
    /// Push: the push service took it; e-mail: the e-mail API accepted it; in-app: the
    /// visitor's inbox fetched it for the first time.
    Delivered,
    /// Permanently failed (refused, retries exhausted, dead-lettered, channel off).
    Failed,
    /// The recipient no longer exists (push subscription expired, e-mail contact removed).
    Gone,
    /// An attempt that will be tried again.
    Retried,
    /// In-app: the visitor marked the item read.
    Read,
    /// Never attempted: the channel's kill switch was off, or the recipient went away
    /// (unsubscribed, contact removed) before the attempt.
    Dropped,
}

impl Outcome {
    /// The label (`outcome="…"`) and the status endpoint's count name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Gone => "gone",
            Self::Retried => "retried",
            Self::Read => "read",
            Self::Dropped => "dropped",
        }
    }

    /// A final state a store records (`delivered`, `failed`, `gone`) or `retry`.
    pub(crate) fn from_record(state: &str) -> Option<Self> {
        match state {
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            "gone" => Some(Self::Gone),
            "retry" => Some(Self::Retried),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_and_have_flags() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
            assert!(c.flag().starts_with("notifications."));
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::json!(c.as_str())
            );
        }
        assert_eq!(Channel::parse("sms"), None);
        assert!(!Channel::Inapp.queued());
        assert!(Channel::Email.queued());
    }

    #[test]
    fn outcomes_from_records() {
        assert_eq!(Outcome::from_record("delivered"), Some(Outcome::Delivered));
        assert_eq!(Outcome::from_record("retry"), Some(Outcome::Retried));
        assert_eq!(Outcome::from_record("queued"), None);
        assert_eq!(Outcome::Read.as_str(), "read");
    }
}
