//! Every route in one table; matching yields the endpoint and the one path
//! parameter, or 404, or 405 with the `Allow` the table implies.

use hyper::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Register,
    Verify,
    Resend,
    Login,
    Me,
    DeleteMe,
    Logout,
    Forgot,
    Reset,
    Change,
    ResetPage,
    VerifyPage,
    VerifyConfirm,
    ResendForm,
    ForgotForm,
    Healthz,
    Readyz,
    Metrics,
    DevInbox,
    DevList,
    DevMessage,
    DevClear,
    DevClearForm,
}

/// (path pattern, [(method, endpoint)]); `{}` matches one non-empty segment.
pub const ROUTES: &[(&str, &[(Method, Endpoint)])] = &[
    ("/api/auth/register", &[(Method::POST, Endpoint::Register)]),
    ("/api/auth/verify", &[(Method::POST, Endpoint::Verify)]),
    ("/api/auth/resend", &[(Method::POST, Endpoint::Resend)]),
    ("/api/auth/login", &[(Method::POST, Endpoint::Login)]),
    (
        "/api/auth/me",
        &[
            (Method::GET, Endpoint::Me),
            (Method::DELETE, Endpoint::DeleteMe),
        ],
    ),
    ("/api/auth/logout", &[(Method::POST, Endpoint::Logout)]),
    (
        "/api/auth/password/forgot",
        &[(Method::POST, Endpoint::Forgot)],
    ),
    (
        "/api/auth/password/reset",
        &[(Method::POST, Endpoint::Reset)],
    ),
    (
        "/api/auth/password/change",
        &[(Method::POST, Endpoint::Change)],
    ),
    ("/reset/{}", &[(Method::GET, Endpoint::ResetPage)]),
    (
        "/verify/{}",
        &[
            (Method::GET, Endpoint::VerifyPage),
            (Method::POST, Endpoint::VerifyConfirm),
        ],
    ),
    ("/resend", &[(Method::POST, Endpoint::ResendForm)]),
    ("/forgot", &[(Method::POST, Endpoint::ForgotForm)]),
    ("/healthz", &[(Method::GET, Endpoint::Healthz)]),
    ("/readyz", &[(Method::GET, Endpoint::Readyz)]),
    ("/metrics", &[(Method::GET, Endpoint::Metrics)]),
    ("/dev/mail", &[(Method::GET, Endpoint::DevInbox)]),
    (
        "/dev/mail/messages",
        &[
            (Method::GET, Endpoint::DevList),
            (Method::DELETE, Endpoint::DevClear),
        ],
    ),
    (
        "/dev/mail/messages/{}",
        &[(Method::GET, Endpoint::DevMessage)],
    ),
    ("/dev/mail/clear", &[(Method::POST, Endpoint::DevClearForm)]),
];

#[derive(Debug, PartialEq, Eq)]
pub enum Match<'a> {
    Found {
        endpoint: Endpoint,
        pattern: &'static str,
        param: Option<&'a str>,
    },
    NotFound,
    MethodNotAllowed {
        pattern: &'static str,
        allow: String,
    },
}

fn match_pattern<'a>(pattern: &str, path: &'a str) -> Option<Option<&'a str>> {
    let mut param = None;
    let mut segs = path.split('/');
    for want in pattern.split('/') {
        let have = segs.next()?;
        if want == "{}" {
            if have.is_empty() {
                return None;
            }
            param = Some(have);
        } else if want != have {
            return None;
        }
    }
    segs.next().is_none().then_some(param)
}

/// Matches `path`; the `/dev/` routes exist only when `dev` (the sink runs).
pub fn route<'a>(method: &Method, path: &'a str, dev: bool) -> Match<'a> {
    for (pattern, methods) in ROUTES {
        if !dev && pattern.starts_with("/dev/") {
            continue;
        }
        let Some(param) = match_pattern(pattern, path) else {
            continue;
        };
        return match methods.iter().find(|(m, _)| m == method) {
            Some((_, endpoint)) => Match::Found {
                endpoint: *endpoint,
                pattern,
                param,
            },
            None => Match::MethodNotAllowed {
                pattern,
                allow: methods
                    .iter()
                    .map(|(m, _)| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        };
    }
    Match::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matching() {
        assert!(matches!(
            route(&Method::POST, "/api/auth/register", false),
            Match::Found {
                endpoint: Endpoint::Register,
                ..
            }
        ));
        assert_eq!(
            route(&Method::GET, "/verify/abc", false),
            Match::Found {
                endpoint: Endpoint::VerifyPage,
                pattern: "/verify/{}",
                param: Some("abc")
            }
        );
        assert_eq!(route(&Method::GET, "/verify/", false), Match::NotFound);
        assert_eq!(route(&Method::GET, "/verify/a/b", false), Match::NotFound);
        assert_eq!(route(&Method::GET, "/nope", false), Match::NotFound);
        assert_eq!(
            route(&Method::DELETE, "/verify/x", false),
            Match::MethodNotAllowed {
                pattern: "/verify/{}",
                allow: "GET, POST".into()
            }
        );
        assert_eq!(route(&Method::GET, "/dev/mail", false), Match::NotFound);
        assert!(matches!(
            route(&Method::GET, "/dev/mail/messages/x", true),
            Match::Found {
                endpoint: Endpoint::DevMessage,
                param: Some("x"),
                ..
            }
        ));
    }
}
