//! IAM's rules for `execute-api:Invoke` on a *route* rather than one request: which
//! statements of a policy decide every call of `GET /internal/users/{id}`, for all
//! values of `{id}`.
//!
//! A route becomes a [`ResourceTemplate`]: the method ARN with each path parameter a
//! hole (`{id}` one or more characters other than `/`, `{proxy+}` one or more of any).
//! A resource pattern (IAM's `*` any run, `?` one character) covers it
//! [`Coverage::All`] when it matches every method ARN the route can have,
//! [`Coverage::None`] when it matches none, else [`Coverage::Some`]. Decided exactly,
//! by running the pattern's automaton over the template (subset construction through
//! the holes), never by trying sample values.
//!
//! [`evaluate`] applies IAM's evaluation logic to full statements as templates write
//! them ([`PolicyStatement`]: `Action`/`NotAction`, `Resource`/`NotResource`,
//! `Condition`): an explicit Deny that applies wins, then an Allow that applies, else
//! the implicit deny. What cannot be decided (a `Condition` it does not evaluate, a
//! pattern covering only some values of a parameter) makes the answer
//! [`IamAnswer::Unknown`] with the statements involved, never a guess.

use std::collections::HashSet;

use service_auth::permissions::wildcard_match;

use crate::policy::{action_matches, INVOKE_ACTION};

/// One policy statement as written, reduced to what decides `execute-api:Invoke`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyStatement {
    /// Where it is written: `Resources.TutorServiceInvokePolicy, statement 1 (Sid X)`.
    pub source: String,
    pub allow: bool,
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub resources: Vec<String>,
    pub not_resources: Vec<String>,
    /// The keys of its `Condition` block (`aws:SourceVpce`), empty when it has none.
    pub condition_keys: Vec<String>,
    /// `Principal` values (resource policies): `*`, or ARNs and account ids.
    pub principals: Vec<String>,
}

impl PolicyStatement {
    /// Whether it is about `execute-api:Invoke` at all.
    pub fn covers_invoke(&self) -> bool {
        if !self.not_actions.is_empty() {
            return !self
                .not_actions
                .iter()
                .any(|a| action_matches(a, INVOKE_ACTION));
        }
        self.actions
            .iter()
            .any(|a| action_matches(a, INVOKE_ACTION))
    }

    /// `Allow execute-api:Invoke on arn:...` in one line, for explanations.
    pub fn summary(&self) -> String {
        let effect = if self.allow { "Allow" } else { "Deny" };
        let (ak, a) = if self.not_actions.is_empty() {
            ("", self.actions.join(", "))
        } else {
            ("NotAction ", self.not_actions.join(", "))
        };
        let (rk, r) = if self.not_resources.is_empty() {
            ("", self.resources.join(", "))
        } else {
            ("NotResource ", self.not_resources.join(", "))
        };
        let mut s = format!("{effect} {ak}{a} on {rk}{r}");
        if !self.condition_keys.is_empty() {
            s.push_str(&format!(" if {}", self.condition_keys.join(", ")));
        }
        s
    }
}

/// How much of a route a pattern (or a statement) covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Every call of the route.
    All,
    /// Some values of its parameters only.
    Some,
    /// No call of the route.
    None,
}

impl Coverage {
    /// Coverage of the union of two sets that each cover this much, as far as it is
    /// known without combining them: `Some ∪ Some` stays `Some` (it might be all).
    fn or(self, other: Coverage) -> Coverage {
        match (self, other) {
            (Coverage::All, _) | (_, Coverage::All) => Coverage::All,
            (Coverage::None, Coverage::None) => Coverage::None,
            _ => Coverage::Some,
        }
    }

    fn complement(self) -> Coverage {
        match self {
            Coverage::All => Coverage::None,
            Coverage::None => Coverage::All,
            Coverage::Some => Coverage::Some,
        }
    }
}

/// What a path parameter stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hole {
    /// `{id}`: one or more characters, none of them `/`.
    Segment,
    /// `{proxy+}`: one or more characters.
    Greedy,
    /// `*` in a route written as a pattern: any run, possibly empty.
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Piece {
    Lit(String),
    Hole(Hole),
}

/// The method ARNs of one route (or a set of them): literal text and holes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceTemplate {
    pieces: Vec<Piece>,
}

/// The methods `ANY` stands for.
pub const ANY_METHODS: [&str; 7] = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"];

impl ResourceTemplate {
    /// `{stage_prefix}{METHOD}/{path}` for a route path as templates write it
    /// (`/users/{id}`, `/files/{proxy+}`); `*` in the path (a grant pattern read as a
    /// route) is any run.
    pub fn route(stage_prefix: &str, method: &str, path: &str) -> Self {
        let mut t = ResourceTemplate { pieces: Vec::new() };
        t.lit(stage_prefix);
        t.lit(method);
        let mut rest = path;
        while !rest.is_empty() {
            let brace = rest.find('{');
            let star = rest.find('*');
            match (brace, star) {
                (Some(b), s) if s.is_none_or(|s| b < s) => {
                    t.lit(&rest[..b]);
                    let Some(end) = rest[b..].find('}') else {
                        t.lit(&rest[b..]);
                        break;
                    };
                    let name = &rest[b + 1..b + end];
                    t.pieces.push(Piece::Hole(if name.ends_with('+') {
                        Hole::Greedy
                    } else {
                        Hole::Segment
                    }));
                    rest = &rest[b + end + 1..];
                }
                (_, Some(s)) => {
                    t.lit(&rest[..s]);
                    t.pieces.push(Piece::Hole(Hole::Any));
                    rest = &rest[s + 1..];
                }
                (_, None) => {
                    t.lit(rest);
                    break;
                }
            }
        }
        t
    }

    /// A template of literal text only (one method ARN).
    pub fn exact(text: &str) -> Self {
        let mut t = ResourceTemplate { pieces: Vec::new() };
        t.lit(text);
        t
    }

    fn lit(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        if let Some(Piece::Lit(last)) = self.pieces.last_mut() {
            last.push_str(s);
        } else {
            self.pieces.push(Piece::Lit(s.to_owned()));
        }
    }

    /// The text when it has no hole.
    fn as_exact(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }

    fn literal_prefix(&self) -> &str {
        match self.pieces.first() {
            Some(Piece::Lit(s)) => s,
            _ => "",
        }
    }
}

/// Most state sets explored for one pattern through one hole: far above what IAM
/// patterns of at most a few wildcards need; beyond it the answer is `Some`'s
/// cautious twin ([`coverage`] returns `None` for "cannot say").
const MAX_STATE_SETS: usize = 4096;

/// How much of `template` the IAM pattern covers; `None` when it cannot be decided
/// within [`MAX_STATE_SETS`].
pub fn coverage(pattern: &str, template: &ResourceTemplate) -> Option<Coverage> {
    if let Some(text) = template.as_exact() {
        return Some(if wildcard_match(pattern.as_bytes(), text.as_bytes()) {
            Coverage::All
        } else {
            Coverage::None
        });
    }
    // The literal text both start with must agree up to the pattern's first wildcard.
    let p = pattern.as_bytes();
    let fixed = p
        .iter()
        .position(|b| *b == b'*' || *b == b'?')
        .unwrap_or(p.len());
    let lit = template.literal_prefix().as_bytes();
    let n = fixed.min(lit.len());
    if p[..n] != lit[..n] {
        return Some(Coverage::None);
    }
    Glob::new(p).coverage(template)
}

/// A pattern's automaton: state `i` is "matched the pattern up to byte `i`".
struct Glob<'p> {
    p: &'p [u8],
    words: usize,
}

type States = Vec<u64>;

impl<'p> Glob<'p> {
    fn new(p: &'p [u8]) -> Self {
        Self {
            p,
            words: (p.len() + 1).div_ceil(64),
        }
    }

    fn has(s: &States, i: usize) -> bool {
        s[i / 64] & (1 << (i % 64)) != 0
    }

    fn add(s: &mut States, i: usize) {
        s[i / 64] |= 1 << (i % 64);
    }

    /// Adds the states reachable without input: past each `*` (it may match nothing).
    fn close(&self, s: &mut States) {
        for i in 0..self.p.len() {
            if self.p[i] == b'*' && Self::has(s, i) {
                Self::add(s, i + 1);
            }
        }
    }

    fn start(&self) -> States {
        let mut s = vec![0; self.words];
        Self::add(&mut s, 0);
        self.close(&mut s);
        s
    }

    fn step(&self, s: &States, c: u8) -> States {
        let mut out = vec![0; self.words];
        for i in 0..self.p.len() {
            if !Self::has(s, i) {
                continue;
            }
            match self.p[i] {
                b'*' => Self::add(&mut out, i),
                b'?' => Self::add(&mut out, i + 1),
                b if b == c => Self::add(&mut out, i + 1),
                _ => {}
            }
        }
        self.close(&mut out);
        out
    }

    fn accepts(&self, s: &States) -> bool {
        Self::has(s, self.p.len())
    }

    /// The characters that behave differently here: each literal byte of the pattern
    /// (but `/` for a segment), and one standing for every other byte (NUL, which no
    /// pattern holds).
    fn alphabet(&self, hole: Hole) -> Vec<u8> {
        let mut seen = [false; 256];
        let mut out = vec![0u8];
        for &b in self.p {
            if b == b'*' || b == b'?' || b == 0 || (hole == Hole::Segment && b == b'/') {
                continue;
            }
            if !seen[b as usize] {
                seen[b as usize] = true;
                out.push(b);
            }
        }
        out
    }

    fn coverage(&self, template: &ResourceTemplate) -> Option<Coverage> {
        let mut sets: HashSet<States> = HashSet::from([self.start()]);
        for piece in &template.pieces {
            let mut next = HashSet::new();
            match piece {
                Piece::Lit(text) => {
                    for s in &sets {
                        let mut s = s.clone();
                        for &c in text.as_bytes() {
                            s = self.step(&s, c);
                        }
                        next.insert(s);
                    }
                }
                Piece::Hole(hole) => {
                    let alphabet = self.alphabet(*hole);
                    for s in &sets {
                        // Sets after one or more characters of the hole's alphabet.
                        let mut seen: HashSet<States> = HashSet::new();
                        let mut todo: Vec<States> =
                            alphabet.iter().map(|&c| self.step(s, c)).collect();
                        while let Some(t) = todo.pop() {
                            if seen.contains(&t) {
                                continue;
                            }
                            if seen.len() >= MAX_STATE_SETS {
                                return None;
                            }
                            todo.extend(alphabet.iter().map(|&c| self.step(&t, c)));
                            seen.insert(t);
                        }
                        if *hole == Hole::Any {
                            seen.insert(s.clone());
                        }
                        next.extend(seen);
                    }
                }
            }
            if next.len() > MAX_STATE_SETS {
                return None;
            }
            sets = next;
        }
        let accepting = sets.iter().filter(|s| self.accepts(s)).count();
        Some(if accepting == sets.len() {
            Coverage::All
        } else if accepting == 0 {
            Coverage::None
        } else {
            Coverage::Some
        })
    }
}

/// How much of every template (the methods of an `ANY` route) a pattern covers.
pub fn coverage_of_all(pattern: &str, templates: &[ResourceTemplate]) -> Option<Coverage> {
    let mut all = true;
    let mut none = true;
    for t in templates {
        match coverage(pattern, t)? {
            Coverage::All => none = false,
            Coverage::None => all = false,
            Coverage::Some => {
                all = false;
                none = false;
            }
        }
    }
    Some(match (all, none) {
        (true, _) => Coverage::All,
        (_, true) => Coverage::None,
        _ => Coverage::Some,
    })
}

/// IAM's answer for every call of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IamAnswer {
    /// This statement allows every call and no Deny may apply.
    Allowed(usize),
    /// This Deny applies to every call.
    ExplicitDeny(usize),
    /// No statement allows any call.
    ImplicitDeny,
    /// Some calls are allowed and others not, or a statement's `Condition` decides:
    /// why, and the statements involved.
    Unknown {
        reason: String,
        statements: Vec<usize>,
    },
}

/// How a statement applies to a route, given how much of it a pattern covers.
fn applies(
    st: &PolicyStatement,
    coverage: &mut dyn FnMut(&str) -> Option<Coverage>,
) -> Result<Coverage, String> {
    if !st.covers_invoke() {
        return Ok(Coverage::None);
    }
    let mut union = |patterns: &[String]| -> Result<Coverage, String> {
        let mut c = Coverage::None;
        for p in patterns {
            c = c.or(coverage(p).ok_or_else(|| {
                format!("the pattern {p} is too complex to compare with the route")
            })?);
        }
        Ok(c)
    };
    let c = if st.not_resources.is_empty() {
        union(&st.resources)?
    } else {
        union(&st.not_resources)?.complement()
    };
    if c != Coverage::None && !st.condition_keys.is_empty() {
        return Ok(Coverage::Some);
    }
    Ok(c)
}

/// IAM's evaluation of `statements` for every call of the route `templates` stands for
/// (several for an `ANY` route): explicit Deny over Allow over the implicit deny.
pub fn evaluate(statements: &[PolicyStatement], templates: &[ResourceTemplate]) -> IamAnswer {
    evaluate_with(statements, &mut |p| coverage_of_all(p, templates))
}

/// [`evaluate`] with the coverage of a pattern given by `coverage` (a caller that
/// asks about the same route for many policies can remember it).
pub fn evaluate_with(
    statements: &[PolicyStatement],
    coverage: &mut dyn FnMut(&str) -> Option<Coverage>,
) -> IamAnswer {
    let mut allow_all = None;
    let mut maybe_allow = Vec::new();
    let mut maybe_deny = Vec::new();
    let mut reasons = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        let c = match applies(st, coverage) {
            Ok(c) => c,
            Err(reason) => {
                reasons.push(format!("{}: {reason}", st.source));
                if st.allow {
                    maybe_allow.push(i);
                } else {
                    maybe_deny.push(i);
                }
                continue;
            }
        };
        match (st.allow, c) {
            (_, Coverage::None) => {}
            (false, Coverage::All) => return IamAnswer::ExplicitDeny(i),
            (false, Coverage::Some) => maybe_deny.push(i),
            (true, Coverage::All) => {
                allow_all.get_or_insert(i);
            }
            (true, Coverage::Some) => maybe_allow.push(i),
        }
    }
    let why = |i: &usize| {
        let st = &statements[*i];
        if st.condition_keys.is_empty() {
            format!("{} covers only some calls of the route", st.source)
        } else {
            format!(
                "{} has a condition ({}) that is not evaluated",
                st.source,
                st.condition_keys.join(", ")
            )
        }
    };
    if allow_all.is_none() && maybe_allow.is_empty() {
        return IamAnswer::ImplicitDeny;
    }
    if !maybe_deny.is_empty() {
        reasons.extend(maybe_deny.iter().map(why));
        return IamAnswer::Unknown {
            reason: reasons.join("; "),
            statements: maybe_deny,
        };
    }
    match allow_all {
        Some(i) => IamAnswer::Allowed(i),
        None => {
            reasons.extend(maybe_allow.iter().map(why));
            IamAnswer::Unknown {
                reason: reasons.join("; "),
                statements: maybe_allow,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "arn:aws:execute-api:us-east-1:123456789012:api/v1/";

    fn route(method: &str, path: &str) -> ResourceTemplate {
        ResourceTemplate::route(PREFIX, method, path)
    }

    fn cov(pattern: &str, method: &str, path: &str) -> Coverage {
        coverage(&format!("{PREFIX}{pattern}"), &route(method, path)).unwrap()
    }

    #[test]
    fn patterns_cover_all_some_or_none_of_a_route() {
        use Coverage::*;
        for (pattern, method, path, want) in [
            ("GET/users/*", "GET", "/users/{id}", All),
            ("GET/users/*", "GET", "/users", None),
            ("GET/users/*", "POST", "/users/{id}", None),
            ("*/users/*", "POST", "/users/{id}/x", All),
            ("GET/users/?*", "GET", "/users/{id}", All),
            // `?` alone is one character: ids of one character only.
            ("GET/users/?", "GET", "/users/{id}", Some),
            ("GET/users/4*", "GET", "/users/{id}", Some),
            ("GET/users/42", "GET", "/users/{id}", Some),
            ("GET/users/42", "GET", "/users/42", All),
            ("GET/users/42", "GET", "/users/43", None),
            // `*` crosses `/`: the parameter plus anything below.
            ("GET/users/*/profile", "GET", "/users/{id}/profile", All),
            // ... but a segment parameter holds no `/`.
            ("GET/users/*/profile", "GET", "/users/{id}", None),
            ("GET/users/*/profile", "GET", "/users/{proxy+}", Some),
            ("GET/users/*/p?ofile", "GET", "/users/{id}/profile", All),
            // A segment never holds `/`; a greedy parameter may.
            ("GET/files/*/x", "GET", "/files/{name}", None),
            ("GET/files/*/x", "GET", "/files/{proxy+}", Some),
            ("GET/files/*", "GET", "/files/{proxy+}", All),
            ("GET/a/*/b/*", "GET", "/a/{x}/b/{y}", All),
            ("GET/a/*b", "GET", "/a/{x}b", All),
        ] {
            assert_eq!(
                cov(pattern, method, path),
                want,
                "{pattern} vs {method} {path}"
            );
        }
        // Another API or stage is not covered.
        let other = coverage(
            "arn:aws:execute-api:us-east-1:123456789012:other/v1/GET/*",
            &route("GET", "/users/{id}"),
        );
        assert_eq!(other, Option::Some(None));
        // A pattern read as a route: `*` is any run, possibly empty.
        assert_eq!(cov("GET/users*", "GET", "/users/*"), All);
        assert_eq!(cov("GET/users/*", "GET", "/users*"), Some);
    }

    #[test]
    fn any_routes_need_every_method() {
        let any: Vec<ResourceTemplate> = ANY_METHODS.iter().map(|m| route(m, "/x/{id}")).collect();
        let p = |s: &str| format!("{PREFIX}{s}");
        assert_eq!(coverage_of_all(&p("*/x/*"), &any), Some(Coverage::All));
        assert_eq!(coverage_of_all(&p("GET/x/*"), &any), Some(Coverage::Some));
        assert_eq!(coverage_of_all(&p("GET/y/*"), &any), Some(Coverage::None));
    }

    fn st(allow: bool, resources: &[&str]) -> PolicyStatement {
        PolicyStatement {
            source: format!("s{}", resources.join(",")),
            allow,
            actions: vec!["execute-api:Invoke".into()],
            resources: resources.iter().map(|r| format!("{PREFIX}{r}")).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn iam_evaluation_on_routes() {
        let r = [route("GET", "/users/{id}")];
        assert_eq!(evaluate(&[], &r), IamAnswer::ImplicitDeny);
        assert_eq!(
            evaluate(&[st(true, &["GET/users/*"])], &r),
            IamAnswer::Allowed(0)
        );
        // Explicit Deny over Allow, in any order.
        let deny = st(false, &["*"]);
        assert_eq!(
            evaluate(&[st(true, &["GET/users/*"]), deny.clone()], &r),
            IamAnswer::ExplicitDeny(1)
        );
        // A Deny of some ids: some calls are refused, others allowed.
        let some = evaluate(
            &[st(true, &["GET/users/*"]), st(false, &["GET/users/1*"])],
            &r,
        );
        assert!(
            matches!(some, IamAnswer::Unknown { ref statements, .. } if statements == &[1]),
            "{some:?}"
        );
        // A Deny that covers some calls, without any Allow: nothing is allowed anyway.
        assert_eq!(
            evaluate(&[st(false, &["GET/users/1*"])], &r),
            IamAnswer::ImplicitDeny
        );
        // An Allow of some ids only.
        let partial = evaluate(&[st(true, &["GET/users/1*"])], &r);
        assert!(
            matches!(partial, IamAnswer::Unknown { ref reason, .. } if reason.contains("only some calls")),
            "{partial:?}"
        );
        // Conditions are not evaluated: unknown, never a guess.
        let mut cond = st(true, &["GET/users/*"]);
        cond.condition_keys = vec!["aws:SourceVpce".into()];
        let c = evaluate(std::slice::from_ref(&cond), &r);
        assert!(
            matches!(c, IamAnswer::Unknown { ref reason, .. } if reason.contains("aws:SourceVpce")),
            "{c:?}"
        );
        // ... unless an unconditional Allow decides and no Deny may apply.
        assert_eq!(
            evaluate(&[cond, st(true, &["*"])], &r),
            IamAnswer::Allowed(1)
        );
        // NotResource: everything but these.
        let mut not = st(true, &[]);
        not.not_resources = vec![format!("{PREFIX}POST/*")];
        assert_eq!(
            evaluate(std::slice::from_ref(&not), &r),
            IamAnswer::Allowed(0)
        );
        not.not_resources = vec![format!("{PREFIX}GET/users/*")];
        assert_eq!(evaluate(&[not], &r), IamAnswer::ImplicitDeny);
        // NotAction: every action but these.
        let mut not_action = st(false, &["*"]);
        not_action.actions = vec![];
        not_action.not_actions = vec!["execute-api:ManageConnections".into()];
        assert_eq!(
            evaluate(&[st(true, &["*"]), not_action.clone()], &r),
            IamAnswer::ExplicitDeny(1)
        );
        not_action.not_actions = vec!["execute-api:*".into()];
        assert_eq!(
            evaluate(&[st(true, &["*"]), not_action], &r),
            IamAnswer::Allowed(0)
        );
        // Other actions do not apply; action names ignore case.
        let mut other = st(true, &["*"]);
        other.actions = vec!["s3:GetObject".into()];
        assert_eq!(
            evaluate(std::slice::from_ref(&other), &r),
            IamAnswer::ImplicitDeny
        );
        other.actions = vec!["EXECUTE-API:invoke".into()];
        assert_eq!(evaluate(&[other], &r), IamAnswer::Allowed(0));
    }

    /// The exact answer agrees with the authorizer's own matcher on concrete calls.
    #[test]
    fn coverage_agrees_with_the_matcher_on_samples() {
        let patterns = [
            "GET/users/*",
            "GET/users/?",
            "GET/users/4*",
            "*/users/*/x",
            "GET/users/*/p?",
            "GET/u*s/*",
            "*",
        ];
        let values = ["4", "42", "x", "a/b", "4/x", "ab/p1"];
        for p in patterns {
            let full = format!("{PREFIX}{p}");
            for (path, holes) in [("/users/{id}", false), ("/users/{proxy+}", true)] {
                let c = coverage(&full, &route("GET", path)).unwrap();
                let hits: Vec<bool> = values
                    .iter()
                    .filter(|v| holes || !v.contains('/'))
                    .map(|v| {
                        let arn = format!("{PREFIX}GET{}", path.replace(&path[7..], v));
                        wildcard_match(full.as_bytes(), arn.as_bytes())
                    })
                    .collect();
                match c {
                    Coverage::All => assert!(hits.iter().all(|h| *h), "{p} {path}"),
                    Coverage::None => assert!(hits.iter().all(|h| !*h), "{p} {path}"),
                    Coverage::Some => {}
                }
            }
        }
    }
}
