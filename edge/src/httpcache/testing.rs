//! Helpers shared by the policy's tests: header lists, a stored entry at a fixed time.

use super::dates::format_http_date;
use super::headers::HeaderList;
use super::lookup::{lookup, Lookup};
use super::request::{request_policy, RequestPolicy};
use super::status::Fwd;
use super::store::storable;

/// 2023-11-14T22:13:20Z, a whole second.
pub(crate) const T0: u64 = 1_700_000_000_000;

pub(crate) const SEC: u64 = 1000;

pub(crate) fn hl(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

pub(crate) fn date(ms: u64) -> String {
    format_http_date(ms / 1000)
}

pub(crate) fn get() -> RequestPolicy {
    request_policy("GET", &[])
}

pub(crate) fn req_policy(cc: &str) -> RequestPolicy {
    request_policy("GET", &hl(&[("cache-control", cc)]))
}

/// Stores a 200 with `res` (plus `Date: T0` unless given) for a plain GET at T0.
pub(crate) fn stored(res: &[(&str, &str)]) -> Vec<(String, String)> {
    stored_for(&[], 200, res)
}

pub(crate) fn stored_for(
    req: &[(&str, &str)],
    status: u16,
    res: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut res = hl(res);
    if !res.iter().any(|(n, _)| n == "date") {
        res.push(("date".into(), date(T0)));
    }
    let req = hl(req);
    storable(&request_policy("GET", &req), &req, status, &res, T0, T0)
        .unwrap()
        .headers
}

pub(crate) fn at(
    entry: &HeaderList,
    policy: &RequestPolicy,
    req: &[(&str, &str)],
    now: u64,
) -> Lookup {
    lookup(policy, &hl(req), Some(entry), now)
}

pub(crate) fn reval(fwd: Fwd) -> impl Fn(&Lookup) -> bool {
    move |l| matches!(l, Lookup::Revalidate { fwd: f, .. } if *f == fwd)
}
