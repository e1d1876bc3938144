//! CORS for the OFREP endpoints, so browser OpenFeature clients on other origins can call the
//! edge. The ETag must be exposed, or the OFREP web provider never revalidates.

use crate::config::Cors;

/// CORS response headers for a request from `origin` (`None` when not cross-origin or not
/// allowed). `preflight` carries `Access-Control-Request-Headers` for an OPTIONS request.
pub(crate) fn headers(
    policy: &Cors,
    origin: Option<&str>,
    preflight: Option<&str>,
) -> Vec<(&'static str, String)> {
    let Some(origin) = origin else {
        return Vec::new();
    };
    let (allow, credentials) = match policy {
        Cors::None => return Vec::new(),
        Cors::Any => ("*".to_owned(), false),
        Cors::List(list) if list.iter().any(|o| o.eq_ignore_ascii_case(origin)) => {
            (origin.to_owned(), true)
        }
        Cors::List(_) => return Vec::new(),
    };
    let mut out = vec![
        ("access-control-allow-origin", allow),
        ("vary", "Origin".to_owned()),
    ];
    if credentials {
        out.push(("access-control-allow-credentials", "true".to_owned()));
    }
    match preflight {
        Some(requested) => {
            out.push(("access-control-allow-methods", "POST, OPTIONS".to_owned()));
            let allowed = if requested.trim().is_empty() {
                "content-type".to_owned()
            } else {
                requested.to_owned()
            };
            out.push(("access-control-allow-headers", allowed));
            out.push(("access-control-max-age", "600".to_owned()));
        }
        None => out.push(("access-control-expose-headers", "ETag".to_owned())),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(h: &[(&'static str, String)]) -> Vec<&'static str> {
        h.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn same_origin_and_disallowed_origins_get_no_cors_headers() {
        assert!(headers(&Cors::Any, None, None).is_empty());
        assert!(headers(&Cors::None, Some("https://a.example"), None).is_empty());
        assert!(headers(
            &Cors::List(vec!["https://a.example".into()]),
            Some("https://evil.example"),
            None
        )
        .is_empty());
    }

    #[test]
    fn allowed_origins_see_the_etag_and_listed_ones_may_send_credentials() {
        let any = headers(&Cors::Any, Some("https://x.example"), None);
        assert_eq!(any[0], ("access-control-allow-origin", "*".to_owned()));
        assert!(any.contains(&("access-control-expose-headers", "ETag".to_owned())));
        assert!(!names(&any).contains(&"access-control-allow-credentials"));

        let listed = headers(
            &Cors::List(vec!["https://a.example".into()]),
            Some("https://a.example"),
            None,
        );
        assert_eq!(
            listed[0],
            (
                "access-control-allow-origin",
                "https://a.example".to_owned()
            )
        );
        assert!(names(&listed).contains(&"access-control-allow-credentials"));
    }

    #[test]
    fn preflights_allow_post_and_the_requested_headers() {
        let h = headers(
            &Cors::Any,
            Some("https://x.example"),
            Some("content-type, if-none-match"),
        );
        assert!(h.contains(&("access-control-allow-methods", "POST, OPTIONS".to_owned())));
        assert!(h.contains(&(
            "access-control-allow-headers",
            "content-type, if-none-match".to_owned()
        )));
    }
}
