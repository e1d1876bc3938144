//! Header lists as the policy sees them: lowercase names, raw values, repeated names kept.

use super::directives::Directives;

/// A header list: lowercase names, raw values, names may repeat.
pub(crate) type HeaderList = [(String, String)];

/// Read-only view of a header list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Headers<'a>(pub &'a HeaderList);

impl<'a> Headers<'a> {
    /// Value of the first line named `name`.
    pub(crate) fn get(self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Values of every line named `name`, in order.
    pub(crate) fn get_all(self, name: &str) -> Vec<&'a str> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// All lines named `name` joined with `", "` (RFC 9110 §5.3), if there is any.
    pub(crate) fn joined(self, name: &str) -> Option<String> {
        let all = self.get_all(name);
        (!all.is_empty()).then(|| all.join(", "))
    }

    /// Whether any line is named `name`.
    pub(crate) fn has(self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Members of a comma-separated list field over all its lines, trimmed, empty members
    /// dropped (RFC 9110 §5.6.1). For token lists such as `Vary` and `Connection`.
    pub(crate) fn list(self, name: &str) -> Vec<&'a str> {
        self.get_all(name)
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// The parsed `Cache-Control` directives of all `Cache-Control` lines.
    pub(crate) fn cache_control(self) -> Directives {
        Directives::parse(self.get_all("cache-control"))
    }
}
