//! Compiled wildcard matchers for actions, resources and string/ARN condition values.
//!
//! Actions match case-insensitively, resources case-sensitively; `*` is any sequence and `?`
//! one character (IAM User Guide, "IAM JSON policy elements: Action" / "Resource"). Resource
//! ARNs are matched field by field: the six colon-separated fields are globbed separately, the
//! last one keeps its `/` and `:` so `*` spans `/` there (IAM User Guide, "IAM JSON policy
//! elements: Condition operators", ARN operators: "each of the six colon-delimited components
//! of the ARN is checked separately"). Patterns without variables never allocate when matched.

use crate::arn::split_arn;
use crate::context::{Env, KeyRef};
use crate::variables::{Piece, parse_pieces};

/// A compiled pattern for one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// `*`.
    Any,
    Exact(Box<str>),
    /// `prefix*`.
    Prefix(Box<str>),
    /// Wildcards without variables.
    Glob(Box<[Piece]>),
    /// Contains policy variables: resolved per request.
    Dynamic(Box<[Piece]>),
}

impl Pattern {
    /// Calls `f` with the key of each policy variable in the pattern.
    pub(crate) fn for_each_key(&self, f: &mut dyn FnMut(&KeyRef)) {
        if let Pattern::Dynamic(pieces) = self {
            for piece in pieces.iter() {
                if let Piece::Var { key, .. } = piece {
                    f(key);
                }
            }
        }
    }

    pub(crate) fn compile(text: &str, wildcards: bool, variables: bool) -> Pattern {
        let pieces = parse_pieces(text, wildcards, variables);
        if pieces.iter().any(|p| matches!(p, Piece::Var { .. })) {
            return Pattern::Dynamic(pieces.into_boxed_slice());
        }
        match pieces.as_slice() {
            [] => Pattern::Exact("".into()),
            [Piece::Star] => Pattern::Any,
            [Piece::Lit(s)] => Pattern::Exact(s.clone()),
            [Piece::Lit(s), Piece::Star] => Pattern::Prefix(s.clone()),
            _ => Pattern::Glob(pieces.into_boxed_slice()),
        }
    }

    pub(crate) fn has_variables(&self) -> bool {
        matches!(self, Pattern::Dynamic(_))
    }

    /// Match `text`; variables are resolved from `env` (an unresolvable one without default
    /// makes the pattern not match).
    pub(crate) fn matches(&self, text: &str, case_insensitive: bool, env: &Env<'_>) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(s) => eq(text, s, case_insensitive),
            Pattern::Prefix(p) => {
                text.len() >= p.len()
                    && text.is_char_boundary(p.len())
                    && eq(&text[..p.len()], p, case_insensitive)
            }
            Pattern::Glob(pieces) => glob(pieces, text, case_insensitive),
            Pattern::Dynamic(pieces) => {
                let mut resolved: Vec<Seg<'_>> = Vec::with_capacity(pieces.len());
                for piece in pieces.iter() {
                    resolved.push(match piece {
                        Piece::Lit(s) => Seg::Lit(s),
                        Piece::Star => Seg::Star,
                        Piece::One => Seg::One,
                        Piece::Var { key, default } => match env.variable(key) {
                            Some(value) => Seg::Lit(value),
                            None => match default {
                                Some(d) => Seg::Lit(d),
                                None => return false,
                            },
                        },
                    });
                }
                glob(&resolved, text, case_insensitive)
            }
        }
    }
}

fn eq(a: &str, b: &str, case_insensitive: bool) -> bool {
    if case_insensitive {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// A piece with variables already resolved.
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Lit(&'a str),
    Star,
    One,
}

trait AsSeg {
    fn seg(&self) -> Seg<'_>;
}

impl AsSeg for Piece {
    fn seg(&self) -> Seg<'_> {
        match self {
            Piece::Lit(s) => Seg::Lit(s),
            Piece::Star => Seg::Star,
            Piece::One => Seg::One,
            // Compile never puts variables into a Glob; treat defensively as unmatched text.
            Piece::Var { .. } => Seg::Lit("\u{0}${"),
        }
    }
}

impl AsSeg for Seg<'_> {
    fn seg(&self) -> Seg<'_> {
        *self
    }
}

fn char_len_at(text: &str, at: usize) -> usize {
    text[at..].chars().next().map_or(1, char::len_utf8)
}

/// Wildcard match with single-star backtracking: linear in the common case, O(n·m) worst.
fn glob<S: AsSeg>(segs: &[S], text: &str, case_insensitive: bool) -> bool {
    let bytes = text.as_bytes();
    let (mut p, mut t) = (0usize, 0usize);
    // (piece index after the last star, text position that star is currently absorbing to)
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < segs.len() {
            match segs[p].seg() {
                Seg::Star => {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                Seg::One if t < bytes.len() => {
                    t += char_len_at(text, t);
                    p += 1;
                    continue;
                }
                Seg::Lit(lit) => {
                    let end = t + lit.len();
                    if end <= bytes.len() && {
                        let part = &bytes[t..end];
                        if case_insensitive {
                            part.eq_ignore_ascii_case(lit.as_bytes())
                        } else {
                            part == lit.as_bytes()
                        }
                    } {
                        t = end;
                        p += 1;
                        continue;
                    }
                }
                Seg::One => {}
            }
        } else if t == bytes.len() {
            return true;
        }
        match star {
            Some((after_star, absorbed)) if absorbed < bytes.len() => {
                let next = absorbed + char_len_at(text, absorbed);
                star = Some((after_star, next));
                p = after_star;
                t = next;
            }
            _ => return false,
        }
    }
}

/// A compiled `Resource`/`NotResource` entry (or ARN condition value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResourceMatcher {
    /// Not an ARN pattern (or `*`): one glob over the whole text.
    Plain(Pattern),
    /// An ARN pattern: one glob per field.
    Arn(Box<[Pattern; 6]>),
}

impl ResourceMatcher {
    /// Calls `f` with the key of each policy variable in the pattern.
    pub(crate) fn for_each_key(&self, f: &mut dyn FnMut(&KeyRef)) {
        match self {
            ResourceMatcher::Plain(p) => p.for_each_key(f),
            ResourceMatcher::Arn(fields) => fields.iter().for_each(|p| p.for_each_key(f)),
        }
    }

    pub(crate) fn compile(text: &str, variables: bool) -> ResourceMatcher {
        let fields = split_fields(text, variables);
        if let [f0, f1, f2, f3, f4, f5] = fields.as_slice()
            && *f0 == "arn"
        {
            let compile = |f: &str| Pattern::compile(f, true, variables);
            return ResourceMatcher::Arn(Box::new([
                compile(f0),
                compile(f1),
                compile(f2),
                compile(f3),
                compile(f4),
                compile(f5),
            ]));
        }
        ResourceMatcher::Plain(Pattern::compile(text, true, variables))
    }

    pub(crate) fn has_variables(&self) -> bool {
        match self {
            ResourceMatcher::Plain(p) => p.has_variables(),
            ResourceMatcher::Arn(fields) => fields.iter().any(Pattern::has_variables),
        }
    }

    pub(crate) fn matches(&self, resource: &str, env: &Env<'_>) -> bool {
        match self {
            ResourceMatcher::Plain(p) => p.matches(resource, false, env),
            ResourceMatcher::Arn(fields) => match split_arn(resource) {
                Some(parts) => fields
                    .iter()
                    .zip(parts.iter())
                    .all(|(f, part)| f.matches(part, false, env)),
                None => false,
            },
        }
    }
}

/// Split pattern text at the first five `:` that are not inside `${…}`.
fn split_fields(text: &str, variables: bool) -> Vec<&str> {
    let mut fields = Vec::with_capacity(6);
    let mut start = 0;
    let mut depth_var = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && fields.len() < 5 {
        match bytes[i] {
            b'$' if variables && bytes.get(i + 1) == Some(&b'{') => {
                depth_var = true;
                i += 1;
            }
            b'}' if depth_var => depth_var = false,
            b':' if !depth_var => {
                fields.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    fields.push(&text[start..]);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Context, Principal};

    fn env_with<'a>(p: &'a Principal, c: &'a Context) -> Env<'a> {
        Env {
            principal: p,
            context: c,
        }
    }

    fn glob_matches(pattern: &str, text: &str, ci: bool) -> bool {
        let p = Principal::root("111122223333");
        let c = Context::new();
        Pattern::compile(pattern, true, false).matches(text, ci, &env_with(&p, &c))
    }

    #[test]
    fn glob_basics() {
        let table = [
            ("*", "", true),
            ("*", "anything", true),
            ("a*", "abc", true),
            ("a*", "ba", false),
            ("*c", "abc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("name-??????", "name-AbCdEf", true),
            ("name-??????", "name-AbCdE", false),
            ("é?", "éü", true),
            ("**", "x", true),
            ("", "", true),
            ("", "x", false),
        ];
        for (pattern, text, want) in table {
            assert_eq!(
                glob_matches(pattern, text, false),
                want,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn action_matching_ignores_case() {
        assert!(glob_matches(
            "secretsmanager:Get*",
            "SecretsManager:getsecretvalue",
            true
        ));
        assert!(glob_matches("kms:ReEncrypt*", "kms:reencryptfrom", true));
        assert!(!glob_matches("kms:Decrypt", "kms:Encrypt", true));
        assert!(!glob_matches("Resource", "resource", false));
    }

    #[test]
    fn arn_fields_are_matched_separately() {
        let p = Principal::root("111122223333");
        let c = Context::new();
        let env = env_with(&p, &c);
        let m = ResourceMatcher::compile("arn:aws:ssm:*:*:parameter/app/*", true);
        assert!(m.matches(
            "arn:aws:ssm:eu-west-1:111122223333:parameter/app/db/pw",
            &env
        ));
        assert!(!m.matches("arn:aws:ssm:eu-west-1:111122223333:parameter/other", &env));
        // A region wildcard must not swallow the account field.
        let m = ResourceMatcher::compile("arn:aws:kms:*:111122223333:key/*", true);
        assert!(m.matches("arn:aws:kms:us-east-1:111122223333:key/abc", &env));
        assert!(!m.matches("arn:aws:kms:us-east-1:999999999999:key/abc", &env));
        assert!(!m.matches("*", &env));
        let m = ResourceMatcher::compile("*", true);
        assert!(m.matches("*", &env));
        assert!(m.matches("arn:aws:kms:us-east-1:1:key/abc", &env));
    }

    #[test]
    fn variables_resolve_as_literal_text() {
        let p = Principal::user("111122223333", "a*b", "AIDAEXAMPLE");
        let c = Context::new();
        let env = env_with(&p, &c);
        let m = ResourceMatcher::compile("arn:aws:s3:::bucket/${aws:username}/*", true);
        assert!(m.matches("arn:aws:s3:::bucket/a*b/key", &env));
        // The '*' in the user name is literal, not a wildcard.
        assert!(!m.matches("arn:aws:s3:::bucket/aXb/key", &env));
        let m = ResourceMatcher::compile("arn:aws:s3:::bucket/${aws:PrincipalTag/x}", true);
        assert!(!m.matches("arn:aws:s3:::bucket/", &env));
        let m = ResourceMatcher::compile("arn:aws:s3:::bucket/${aws:PrincipalTag/x, 'd'}", true);
        assert!(m.matches("arn:aws:s3:::bucket/d", &env));
    }
}
