//! Routes and their paths. Each parameter becomes one percent-encoded path segment:
//! everything but `A-Z a-z 0-9 - . _ ~` is escaped, so an email (`@`, `+`), a slash or
//! a `?` can neither change the route nor reach the server unescaped.

use http::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// RFC 3986 unreserved characters stay; everything else is escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A route of the called API: a method and a path template with `{name}` parameters,
/// e.g. `GET /internal/users/by-email/{email}`. The template is what errors and logs
/// name, never the filled-in path (which may hold personal data).
#[derive(Debug, Clone)]
pub struct Route {
    pub method: Method,
    pub template: &'static str,
}

/// Why a path could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// The template has a different number of `{…}` than parameters given.
    Arity { expected: usize, given: usize },
    /// A parameter is empty, `.` or `..`: it would change which route is called.
    Segment(usize),
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Arity { expected, given } => {
                write!(f, "the route takes {expected} parameters, {given} given")
            }
            Self::Segment(i) => write!(
                f,
                "parameter {i} is empty, \".\" or \"..\", which would change the route"
            ),
        }
    }
}

impl Route {
    pub const fn new(method: Method, template: &'static str) -> Self {
        Self { method, template }
    }

    pub const fn get(template: &'static str) -> Self {
        Self::new(Method::GET, template)
    }

    pub const fn post(template: &'static str) -> Self {
        Self::new(Method::POST, template)
    }

    /// `METHOD /template`, for errors and logs.
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// The path with each parameter percent-encoded as one segment.
    pub fn path(&self, params: &[&str]) -> Result<String, PathError> {
        let expected = self.template.matches('{').count();
        if expected != params.len() {
            return Err(PathError::Arity {
                expected,
                given: params.len(),
            });
        }
        let mut out = String::with_capacity(self.template.len() + 16);
        let mut rest = self.template;
        for (i, p) in params.iter().enumerate() {
            if p.is_empty() || *p == "." || *p == ".." {
                return Err(PathError::Segment(i));
            }
            // Both exist: the count above matched.
            let (Some(open), Some(close)) = (rest.find('{'), rest.find('}')) else {
                return Err(PathError::Arity {
                    expected,
                    given: params.len(),
                });
            };
            out.push_str(&rest[..open]);
            out.extend(utf8_percent_encode(p, SEGMENT));
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BY_EMAIL: Route = Route::get("/internal/users/by-email/{email}");
    const PROFILE: Route = Route::get("/internal/tutor/students/{id}/profile");

    #[test]
    fn segments_are_escaped() {
        assert_eq!(
            BY_EMAIL.path(&["ada.lovelace+maths@example.com"]).unwrap(),
            "/internal/users/by-email/ada.lovelace%2Bmaths%40example.com"
        );
        assert_eq!(
            PROFILE.path(&["a/../b?x=1#f"]).unwrap(),
            "/internal/tutor/students/a%2F..%2Fb%3Fx%3D1%23f/profile"
        );
        assert_eq!(
            BY_EMAIL.path(&["é %"]).unwrap(),
            "/internal/users/by-email/%C3%A9%20%25"
        );
        assert_eq!(
            BY_EMAIL.path(&["A-z_0.9~"]).unwrap(),
            "/internal/users/by-email/A-z_0.9~"
        );
    }

    #[test]
    fn segments_that_would_change_the_route_are_refused() {
        for bad in ["", ".", ".."] {
            assert_eq!(PROFILE.path(&[bad]), Err(PathError::Segment(0)));
        }
        assert_eq!(
            PROFILE.path(&[]),
            Err(PathError::Arity {
                expected: 1,
                given: 0
            })
        );
        assert_eq!(
            PROFILE.path(&["a", "b"]),
            Err(PathError::Arity {
                expected: 1,
                given: 2
            })
        );
        assert_eq!(
            Route::post("/internal/users").path(&[]).unwrap(),
            "/internal/users"
        );
        assert_eq!(BY_EMAIL.name(), "GET /internal/users/by-email/{email}");
    }
}
