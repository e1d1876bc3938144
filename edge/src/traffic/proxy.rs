//! Origin proxy policy: which URL the origin gets, which headers cross the edge and which
//! headers the edge adds, and what a proxied request reports (its metrics record, the retry
//! header, the isolate's counters). Pure functions, so they are tested natively.

use crate::flags::live::Active;
use crate::httpcache::CacheStatus;
use crate::measure::metrics::{cache_outcome, CacheOutcome, RequestRecord};
use crate::traffic::header_edits::HeaderEdit;

/// Header the edge adds to every response it handles: proof the worker ran, and which build.
pub(crate) const EDGE_HEADER: &str = "x-edgeflags";
/// Value of [`EDGE_HEADER`].
pub(crate) const EDGE_HEADER_VALUE: &str = concat!("edge/", env!("CARGO_PKG_VERSION"));

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward, in either direction.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers that tell an origin who the client is or what it asked for. Frameworks
/// behind a proxy trust them, so a visitor's own copy would let the visitor speak for the
/// edge (and poison the cached response the next visitor of the same variant gets): they are
/// dropped inbound, and the edge sets the ones it vouches for ([`forwarded_headers`]).
const SPOOFABLE: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether a visitor may not set this request header (see [`SPOOFABLE`]): also every
/// `X-Forwarded-*` and every `X-Edgeflags-*` (the edge's own headers to the origin).
fn spoofable(lower: &str) -> bool {
    SPOOFABLE.contains(&lower)
        || lower.starts_with("x-forwarded-")
        || lower.starts_with("x-edgeflags")
}

/// Whether a header is hop-by-hop: a standard one, or one the message's own `Connection`
/// header names (`connection_tokens`).
pub(crate) fn is_hop_by_hop(name: &str, connection_tokens: &[String]) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
        || connection_tokens
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
}

/// Whether a visitor's request header goes on to the origin.
pub(crate) fn forward_request_header(name: &str, connection_tokens: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    !is_hop_by_hop(&lower, connection_tokens)
        // `cf-*` headers are the platform's; the origin gets the standard forwarding headers.
        && !lower.starts_with("cf-")
        // `Host` is set by fetch from the origin URL; the visitor's host goes in X-Forwarded-Host.
        && lower != "host"
        // Requests never carry the edge's own headers inward, nor forwarding headers the
        // visitor wrote.
        && !spoofable(&lower)
}

/// Whether an origin response header goes on to the visitor.
pub(crate) fn forward_response_header(name: &str, connection_tokens: &[String]) -> bool {
    !is_hop_by_hop(name, connection_tokens)
}

/// The header names a `Connection` header value declares hop-by-hop.
pub(crate) fn connection_tokens(connection: Option<&str>) -> Vec<String> {
    connection
        .map(|v| {
            v.split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The URL to fetch at the origin for a request to `path_and_query` at the edge.
pub(crate) fn upstream_url(origin: &str, path_and_query: &str) -> String {
    let mut url = String::with_capacity(origin.len() + path_and_query.len() + 1);
    url.push_str(origin);
    if !path_and_query.starts_with('/') {
        url.push('/');
    }
    url.push_str(path_and_query);
    url
}

/// The forwarding headers the edge vouches for — `Forwarded` (RFC 7239) and its de-facto
/// `X-Forwarded-Proto/Host/For` and `X-Real-IP` twins — telling the origin what the visitor
/// asked for and from where. Every visitor-sent copy was dropped before (the client IP is the
/// platform's `CF-Connecting-IP`, never a header the visitor wrote).
pub(crate) fn forwarded_headers(
    host: Option<&str>,
    scheme: &str,
    client_ip: Option<&str>,
) -> Vec<(&'static str, String)> {
    let proto = scheme.trim_end_matches(':').to_ascii_lowercase();
    let mut out = vec![("x-forwarded-proto", proto.clone())];
    // RFC 7239 §4: IPv6 addresses are quoted and bracketed; host values are quoted when they
    // carry a port (':' is not a token character).
    let mut forwarded = Vec::new();
    if let Some(ip) = client_ip {
        out.push(("x-forwarded-for", ip.to_owned()));
        out.push(("x-real-ip", ip.to_owned()));
        forwarded.push(if ip.contains(':') {
            format!("for=\"[{ip}]\"")
        } else {
            format!("for={ip}")
        });
    }
    if let Some(h) = host {
        out.push(("x-forwarded-host", h.to_owned()));
        if !h.contains(['"', '\\']) {
            forwarded.push(format!("host=\"{h}\""));
        }
    }
    forwarded.push(format!("proto={proto}"));
    out.push(("forwarded", forwarded.join(";")));
    out
}

/// Whether a status can be sent on (and be the status of a constructed JS `Response`):
/// 200..=599. `fetch` returns whatever the origin wrote, 1xx aside.
pub(crate) fn sendable_status(status: u16) -> bool {
    (200..=599).contains(&status)
}

/// The replacement headers of an origin request without the validators the cache added: they
/// belong to the chosen variant's entry, not to the stable origin's representation, so a
/// retry on the stable origin goes without them.
pub(crate) fn without_validators(replace: &[(String, String)]) -> Vec<(String, String)> {
    replace
        .iter()
        .filter(|(n, _)| !n.starts_with("if-"))
        .cloned()
        .collect()
}

/// The headers an origin gets for a visitor's request (`visitor`: the request's headers,
/// lowercase names): what may be forwarded ([`forward_request_header`]), the forwarding
/// headers the edge vouches for ([`forwarded_headers`]; `host` defaults to the URL's),
/// `Surrogate-Capability` (Edge Architecture 1.0, so the origin can address
/// `Surrogate-Control` to us) and `extra` ([`origin_request_headers`]).
pub(crate) fn origin_headers(
    visitor: &[(String, String)],
    url_host: Option<&str>,
    scheme: &str,
    extra: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let get = |name: &str| {
        visitor
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let tokens = connection_tokens(get("connection"));
    let mut headers: Vec<(String, String)> = visitor
        .iter()
        .filter(|(name, _)| forward_request_header(name, &tokens))
        .cloned()
        .collect();
    let host = get("host").or(url_host);
    for (name, value) in forwarded_headers(host, scheme, get("cf-connecting-ip")) {
        headers.retain(|(n, _)| n != name);
        headers.push((name.to_owned(), value));
    }
    let capability = crate::httpcache::surrogate_capability(get("surrogate-capability"));
    headers.retain(|(n, _)| n != "surrogate-capability");
    headers.push(("surrogate-capability".to_owned(), capability));
    headers.extend(extra);
    headers
}

/// `headers` with `replace` put in: each replaces the headers of its name, and a conditional
/// one (`If-*`) replaces all of the visitor's validators (a revalidation asks with the
/// stored entry's validators only).
pub(crate) fn with_replacements(
    headers: &[(String, String)],
    replace: &[(String, String)],
) -> Vec<(String, String)> {
    let conditional = replace.iter().any(|(n, _)| n.starts_with("if-"));
    let mut want: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| {
            !(replace.iter().any(|(n, _)| n == name) || (conditional && name.starts_with("if-")))
        })
        .cloned()
        .collect();
    want.extend(replace.iter().cloned());
    want
}

/// Which of an origin response's headers (`list`, lowercase names) do not pass the edge:
/// hop-by-hop ones (with those `Connection` names) and those advertising software versions.
pub(crate) fn response_headers_dropped(list: &[(String, String)]) -> Vec<String> {
    let connection = list
        .iter()
        .find(|(n, _)| n == "connection")
        .map(|(_, v)| v.as_str());
    let tokens = connection_tokens(connection);
    list.iter()
        .filter(|(n, _)| {
            !forward_response_header(n, &tokens)
                || crate::traffic::security::STRIPPED_RESPONSE_HEADERS.contains(&n.as_str())
        })
        .map(|(n, _)| n.clone())
        .collect()
}

/// What the edge tells the origin about a request, besides the forwarding headers: its
/// request id (`X-Edgeflags-Request-Id`, also on the response) and, when a flag chose the
/// origin, `X-Edgeflags-Variants: <flag>=<variant>` — so the origin can log the variant it
/// serves.
pub(crate) fn origin_request_headers(
    request_id: &str,
    decided_by: Option<(&str, &str)>,
) -> Vec<(String, String)> {
    let mut headers = vec![("x-edgeflags-request-id".to_owned(), request_id.to_owned())];
    if let Some((flag, variant)) = decided_by {
        headers.push((
            "x-edgeflags-variants".to_owned(),
            format!("{flag}={variant}"),
        ));
    }
    headers
}

/// What the edge says about a proxied answer, in its response headers.
#[derive(Debug)]
pub(crate) struct Answered<'a> {
    pub(crate) cache: &'a CacheStatus,
    /// The answer's own `Cache-Status` (an upstream cache's), which ours follows.
    pub(crate) upstream: Option<&'a str>,
    /// The origin (or `cache`) that answered.
    pub(crate) origin: String,
    pub(crate) request_id: String,
    /// [`retried_header`]'s value, when the stable origin answered a retry.
    pub(crate) retried: Option<String>,
    /// A new visitor id's cookie.
    pub(crate) set_cookie: Option<String>,
}

/// The edge's own response headers on a proxied answer (security headers follow, in
/// `host::hardening`). `Surrogate-Control` is addressed to surrogates (us), never to the
/// visitor; stored entries keep it.
pub(crate) fn answer_edits(a: Answered<'_>) -> Vec<HeaderEdit> {
    let mut edits = vec![
        HeaderEdit::Delete("surrogate-control".into()),
        HeaderEdit::Set("cache-status".into(), a.cache.append_to(a.upstream)),
        HeaderEdit::Set("x-edgeflags-origin".into(), a.origin),
        HeaderEdit::Set("x-edgeflags-request-id".into(), a.request_id),
    ];
    if let Some(retry) = a.retried {
        edits.push(HeaderEdit::Set("x-edgeflags-retried".into(), retry));
    }
    if let Some(cookie) = a.set_cookie {
        edits.push(HeaderEdit::Append("set-cookie".into(), cookie));
    }
    edits
}

/// `X-Edgeflags-Retried` for a response the stable origin gave after the chosen one failed:
/// `<chosen>-><stable>`; nothing when the chosen origin answered.
pub(crate) fn retried_header(retried: bool, chosen: &str, stable: &str) -> Option<String> {
    retried.then(|| format!("{chosen}->{stable}"))
}

/// How a proxied request ended, as far as the metrics care.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ended<'a> {
    /// The route's flag and the variant that picked the origin, when a flag did.
    pub(crate) decided_by: Option<(&'a str, &'a str)>,
    /// The origin chosen for the request.
    pub(crate) chosen: &'a str,
    /// The origin (or `cache`) that answered and what the cache did; `None` when nothing
    /// answered (the request ends in an error).
    pub(crate) served: Option<(&'a str, &'a CacheStatus)>,
    /// Connect errors and 5xx of the chosen origin, counted even when the stable retry saved
    /// the request: they are the canary's errors.
    pub(crate) chosen_failures: u32,
    pub(crate) latency_ms: f64,
}

/// The metrics record of a proxied request: the answering origin (the chosen one when
/// nothing answered), an origin error when the chosen origin failed or nothing answered,
/// the cache outcome (none for an error), and the epoch of the deciding flag in `active`.
pub(crate) fn request_record<'a>(
    ended: &Ended<'a>,
    active: Option<&'a Active>,
) -> RequestRecord<'a> {
    let epoch = match (ended.decided_by, active) {
        (Some((flag, _)), Some(a)) => a.epoch(flag),
        _ => "",
    };
    let (origin, cache) = match ended.served {
        Some((origin, status)) => (origin, cache_outcome(status)),
        None => (ended.chosen, CacheOutcome::NotApplicable),
    };
    RequestRecord {
        decided_by: ended.decided_by,
        epoch,
        origin,
        origin_error: ended.chosen_failures > 0 || ended.served.is_none(),
        cache,
        latency_ms: ended.latency_ms,
    }
}

/// Requests per answering origin and retries on the stable origin since the isolate started:
/// what this one isolate did, for `/__edge/status` next to the deployment-wide metrics.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct ProxyCounters {
    pub(crate) requests: std::collections::BTreeMap<String, u64>,
    pub(crate) retries: u64,
    /// Of `requests`, those the fast path answered (`host/request/fast.rs`, `FAST_PATH`).
    #[serde(rename = "fastPath")]
    pub(crate) fast_path: u64,
}

impl ProxyCounters {
    /// Counts one answered request.
    pub(crate) fn count(&mut self, origin: &str, retried: bool) {
        match self.requests.get_mut(origin) {
            Some(n) => *n += 1,
            None => {
                self.requests.insert(origin.to_owned(), 1);
            }
        }
        self.retries += u64::from(retried);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpcache::Fwd;

    #[test]
    fn a_retry_on_the_stable_origin_drops_the_cache_validators_only() {
        let replace = vec![
            ("if-none-match".to_owned(), "\"v2\"".to_owned()),
            ("x-edgeflags-request-id".to_owned(), "r".to_owned()),
            ("if-modified-since".to_owned(), "x".to_owned()),
        ];
        assert_eq!(
            without_validators(&replace),
            vec![("x-edgeflags-request-id".to_owned(), "r".to_owned())]
        );
    }

    #[test]
    fn the_retry_header_names_both_origins_only_after_a_retry() {
        assert_eq!(retried_header(true, "v2", "v1").as_deref(), Some("v2->v1"));
        assert_eq!(retried_header(false, "v2", "v1"), None);
    }

    #[test]
    fn a_request_record_counts_the_chosen_origins_failures_even_when_the_retry_saved_it() {
        let miss = CacheStatus::Forward {
            fwd: Fwd::UriMiss,
            fwd_status: Some(200),
            ttl: None,
            stored: false,
            detail: None,
        };
        let ended = Ended {
            decided_by: Some(("backend", "canary")),
            chosen: "v2",
            served: Some(("v1", &miss)),
            chosen_failures: 1,
            latency_ms: 12.0,
        };
        let r = request_record(&ended, None);
        assert_eq!((r.origin, r.origin_error, r.epoch), ("v1", true, ""));
        assert_eq!(r.cache, CacheOutcome::Miss);
        assert_eq!(r.decided_by, Some(("backend", "canary")));
        // Nothing answered: the chosen origin is charged, and it is no cache outcome.
        let failed = Ended {
            served: None,
            chosen_failures: 0,
            ..ended
        };
        let r = request_record(&failed, None);
        assert_eq!((r.origin, r.origin_error), ("v2", true));
        assert_eq!(r.cache, CacheOutcome::NotApplicable);
        // A clean hit.
        let hit = CacheStatus::Hit {
            ttl: 5,
            detail: None,
        };
        let ok = Ended {
            served: Some(("cache", &hit)),
            chosen_failures: 0,
            ..ended
        };
        let r = request_record(&ok, None);
        assert_eq!(
            (r.origin, r.origin_error, r.cache),
            ("cache", false, CacheOutcome::Hit)
        );
    }

    #[test]
    fn counters_count_answers_per_origin_and_retries() {
        let mut c = ProxyCounters::default();
        c.count("v2", false);
        c.count("v1", true);
        c.count("v2", false);
        assert_eq!(c.requests.get("v2"), Some(&2));
        assert_eq!(c.requests.get("v1"), Some(&1));
        assert_eq!(c.retries, 1);
    }

    #[test]
    fn only_statuses_a_response_can_be_built_with_are_sendable() {
        for ok in [200, 204, 304, 404, 599] {
            assert!(sendable_status(ok), "{ok}");
        }
        for bad in [0, 101, 199, 600, 999] {
            assert!(!sendable_status(bad), "{bad}");
        }
    }

    #[test]
    fn hop_by_hop_and_platform_headers_are_not_forwarded() {
        let none: Vec<String> = vec![];
        for name in [
            "Connection",
            "keep-alive",
            "TE",
            "Transfer-Encoding",
            "upgrade",
            "cf-ray",
            "CF-Connecting-IP",
            "x-edgeflags",
            "Host",
        ] {
            assert!(!forward_request_header(name, &none), "{name} forwarded");
        }
    }

    #[test]
    fn forwarding_headers_a_visitor_wrote_never_reach_the_origin() {
        let none: Vec<String> = vec![];
        for name in [
            "X-Edgeflags-Variants",
            "x-edgeflags-request-id",
            "Forwarded",
            "X-Forwarded-For",
            "X-Forwarded-Host",
            "X-Forwarded-Proto",
            "X-Forwarded-Prefix",
            "X-Forwarded-Port",
            "X-Real-IP",
            "True-Client-IP",
            "X-Original-URL",
            "X-Rewrite-URL",
            "X-HTTP-Method-Override",
        ] {
            assert!(!forward_request_header(name, &none), "{name} forwarded");
        }
        for name in [
            "accept",
            "cookie",
            "authorization",
            "if-none-match",
            "x-custom",
        ] {
            assert!(forward_request_header(name, &none), "{name} dropped");
        }
    }

    #[test]
    fn responses_keep_everything_but_hop_by_hop_headers() {
        let none: Vec<String> = vec![];
        assert!(!forward_response_header("Transfer-Encoding", &none));
        for name in [
            "set-cookie",
            "cache-control",
            "etag",
            "cf-cache-status",
            "x-app-version",
        ] {
            assert!(forward_response_header(name, &none), "{name} dropped");
        }
    }

    #[test]
    fn headers_named_in_connection_are_hop_by_hop() {
        let tokens = connection_tokens(Some("close, X-Secret ,"));
        assert_eq!(tokens, vec!["close", "x-secret"]);
        assert!(!forward_request_header("X-Secret", &tokens));
        assert!(!forward_response_header("x-secret", &tokens));
        assert!(forward_request_header("x-other", &tokens));
    }

    #[test]
    fn upstream_url_keeps_path_and_query() {
        assert_eq!(
            upstream_url("http://127.0.0.1:1", "/api/orders?x=1"),
            "http://127.0.0.1:1/api/orders?x=1"
        );
        assert_eq!(upstream_url("http://o", "a"), "http://o/a");
    }

    #[test]
    fn forwarded_headers_describe_the_visitor_request() {
        let h = forwarded_headers(Some("shop.example"), "https:", Some("203.0.113.9"));
        assert_eq!(
            h,
            vec![
                ("x-forwarded-proto", "https".to_owned()),
                ("x-forwarded-for", "203.0.113.9".to_owned()),
                ("x-real-ip", "203.0.113.9".to_owned()),
                ("x-forwarded-host", "shop.example".to_owned()),
                (
                    "forwarded",
                    "for=203.0.113.9;host=\"shop.example\";proto=https".to_owned()
                ),
            ]
        );
        let v6 = forwarded_headers(Some("h:8080"), "http:", Some("2001:db8::1"));
        assert_eq!(
            v6.last().map(|(_, v)| v.as_str()),
            Some("for=\"[2001:db8::1]\";host=\"h:8080\";proto=http")
        );
    }

    #[test]
    fn the_origin_learns_the_request_id_and_the_variant_that_chose_it() {
        assert_eq!(
            origin_request_headers("r1", Some(("backend", "v2"))),
            vec![
                ("x-edgeflags-request-id".to_owned(), "r1".to_owned()),
                ("x-edgeflags-variants".to_owned(), "backend=v2".to_owned()),
            ]
        );
        assert_eq!(
            origin_request_headers("r1", None),
            vec![("x-edgeflags-request-id".to_owned(), "r1".to_owned())]
        );
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_origin_gets_forwardable_headers_the_edges_forwarding_headers_and_extras() {
        let visitor = pairs(&[
            ("host", "shop.example"),
            ("connection", "close, x-secret"),
            ("x-secret", "hop"),
            ("x-forwarded-for", "6.6.6.6"),
            ("cf-connecting-ip", "203.0.113.9"),
            ("accept", "*/*"),
        ]);
        let extra = pairs(&[("x-edgeflags-request-id", "r1")]);
        let out = origin_headers(&visitor, Some("ignored.example"), "https", extra);
        let get = |name: &str| out.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("accept"), Some("*/*"));
        assert_eq!(get("connection"), None);
        assert_eq!(get("x-secret"), None, "named by Connection: hop-by-hop");
        assert_eq!(
            get("x-forwarded-for"),
            Some("203.0.113.9"),
            "the visitor's own is replaced"
        );
        assert_eq!(get("x-forwarded-host"), Some("shop.example"));
        assert_eq!(get("x-forwarded-proto"), Some("https"));
        assert!(get("surrogate-capability").is_some());
        assert_eq!(get("x-edgeflags-request-id"), Some("r1"));
        assert_eq!(
            out.iter().filter(|(n, _)| n == "x-forwarded-for").count(),
            1
        );
    }

    #[test]
    fn replacements_replace_their_names_and_a_conditional_one_all_validators() {
        let headers = pairs(&[
            ("if-none-match", "\"visitor\""),
            ("if-modified-since", "x"),
            ("accept", "a"),
            ("x-edgeflags-request-id", "old"),
        ]);
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Pairs<'_>, Pairs<'_>)] = &[
            (
                &[],
                &[
                    ("if-none-match", "\"visitor\""),
                    ("if-modified-since", "x"),
                    ("accept", "a"),
                    ("x-edgeflags-request-id", "old"),
                ],
            ),
            (
                &[("x-edgeflags-request-id", "new")],
                &[
                    ("if-none-match", "\"visitor\""),
                    ("if-modified-since", "x"),
                    ("accept", "a"),
                    ("x-edgeflags-request-id", "new"),
                ],
            ),
            (
                &[("if-none-match", "\"stored\"")],
                &[
                    ("accept", "a"),
                    ("x-edgeflags-request-id", "old"),
                    ("if-none-match", "\"stored\""),
                ],
            ),
        ];
        for (replace, want) in cases {
            assert_eq!(
                with_replacements(&headers, &pairs(replace)),
                pairs(want),
                "{replace:?}"
            );
        }
    }

    #[test]
    fn hop_by_hop_and_version_headers_of_a_response_are_dropped() {
        let list = pairs(&[
            ("content-type", "text/html"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("x-powered-by", "PHP"),
            ("etag", "\"1\""),
        ]);
        assert_eq!(
            response_headers_dropped(&list),
            vec!["connection", "x-hop", "transfer-encoding", "x-powered-by"]
        );
    }
}
