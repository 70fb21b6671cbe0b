//! REST API resource matching: a request path picks the most specific resource (a
//! literal segment beats `{param}`, which beats a greedy `{proxy+}`), then its method
//! (or `ANY`). No resource, or no method on it: API Gateway's 403
//! `Missing Authentication Token`.

use crate::template::RouteDef;
use crate::util::percent_decode;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param(String),
    Greedy(String),
}

fn segments(path: &str) -> Vec<Seg> {
    path.trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                Seg::Greedy(name.to_owned())
            } else if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Seg::Param(name.to_owned())
            } else {
                Seg::Lit(s.to_owned())
            }
        })
        .collect()
}

/// A matched route and its path parameters (percent-decoded, as API Gateway gives
/// them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'a> {
    pub route: &'a RouteDef,
    pub path_parameters: Vec<(String, String)>,
}

/// Specificity of a match, compared segment by segment: 2 literal, 1 param, 0 greedy.
type Score = (Vec<u8>, Vec<(String, String)>);

fn score(pattern: &[Seg], path: &[&str]) -> Option<Score> {
    let mut rank = Vec::new();
    let mut params = Vec::new();
    for (i, seg) in pattern.iter().enumerate() {
        match seg {
            Seg::Greedy(name) => {
                if i >= path.len() {
                    return None;
                }
                rank.push(0);
                params.push((name.clone(), percent_decode(&path[i..].join("/"))));
                return Some((rank, params));
            }
            Seg::Lit(l) => {
                if path.get(i) != Some(&l.as_str()) {
                    return None;
                }
                rank.push(2);
            }
            Seg::Param(name) => {
                let v = path.get(i)?;
                rank.push(1);
                params.push((name.clone(), percent_decode(v)));
            }
        }
    }
    (pattern.len() == path.len()).then_some((rank, params))
}

/// The route for `method` and `path` (the path after the stage, as received) among
/// one API's routes.
pub fn find<'a>(routes: &[&'a RouteDef], method: &str, path: &str) -> Option<Matched<'a>> {
    let parts: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    // The best resource first, then its method.
    let mut best: Option<(Vec<u8>, &str)> = None;
    for r in routes {
        if let Some((rank, _)) = score(&segments(&r.path), &parts) {
            if best.as_ref().is_none_or(|(b, _)| rank > *b) {
                best = Some((rank, r.path.as_str()));
            }
        }
    }
    let (_, resource) = best?;
    let on_resource = || routes.iter().filter(|r| r.path == resource);
    let route = on_resource()
        .find(|r| r.method == method)
        .or_else(|| on_resource().find(|r| r.method == "ANY"))?;
    let (_, path_parameters) = score(&segments(&route.path), &parts)?;
    Some(Matched {
        route,
        path_parameters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::RouteAuth;

    fn r(method: &str, path: &str) -> RouteDef {
        RouteDef {
            api: "A".into(),
            path: path.into(),
            method: method.into(),
            function: format!("{method} {path}"),
            auth: RouteAuth::None,
        }
    }

    #[test]
    fn literal_beats_param_and_methods_must_match() {
        let all = [
            r("GET", "/internal/users/{id}"),
            r("GET", "/internal/users/by-email/{email}"),
            r("POST", "/internal/users"),
            r("ANY", "/files/{proxy+}"),
        ];
        let routes: Vec<&RouteDef> = all.iter().collect();
        let m = find(&routes, "GET", "/internal/users/42").unwrap();
        assert_eq!(m.route.path, "/internal/users/{id}");
        assert_eq!(m.path_parameters, vec![("id".into(), "42".into())]);
        let m = find(&routes, "GET", "/internal/users/by-email/a%40b.com").unwrap();
        assert_eq!(m.route.path, "/internal/users/by-email/{email}");
        assert_eq!(m.path_parameters, vec![("email".into(), "a@b.com".into())]);
        // `by-email` alone is an id.
        let m = find(&routes, "GET", "/internal/users/by-email").unwrap();
        assert_eq!(m.route.path, "/internal/users/{id}");
        assert!(find(&routes, "POST", "/internal/users").is_some());
        assert!(find(&routes, "GET", "/internal/users").is_none());
        assert!(find(&routes, "DELETE", "/internal/users/42").is_none());
        assert!(find(&routes, "GET", "/internal/users/42/extra").is_none());
        assert!(find(&routes, "GET", "/internal").is_none());
        let m = find(&routes, "PUT", "/files/a/b%20c").unwrap();
        assert_eq!(m.path_parameters, vec![("proxy".into(), "a/b c".into())]);
        assert!(find(&routes, "PUT", "/files").is_none());
    }
}
