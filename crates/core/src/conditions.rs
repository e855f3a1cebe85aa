//! Condition keys of an authorization request (`kms:ViaService`, `secretsmanager:SecretId`,
//! …): each name and value borrowed from the request, the caller or the target where it can
//! be, owned where it is built (`aws:ResourceTag/<key>`).

use std::borrow::Cow;

/// A condition key and its value.
pub type Condition<'a> = (Cow<'a, str>, Cow<'a, str>);

/// A condition key and its value, each borrowed or owned (`cond("kms:KeySpec",
/// "SYMMETRIC_DEFAULT")`, `cond(format!("aws:RequestTag/{k}"), v.as_str())`).
pub fn cond<'a>(key: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) -> Condition<'a> {
    (key.into(), value.into())
}

/// Owned key/value pairs as condition keys (moved, not copied).
pub fn owned_conditions<'a>(pairs: Vec<(String, String)>) -> Vec<Condition<'a>> {
    pairs
        .into_iter()
        .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_parts_stay_borrowed_and_owned_pairs_keep_their_order() {
        let account = String::from("111122223333");
        let (k, v) = cond("kms:CallerAccount", account.as_str());
        assert!(matches!(k, Cow::Borrowed("kms:CallerAccount")));
        assert!(matches!(v, Cow::Borrowed(a) if std::ptr::eq(a, account.as_str())));
        let built = cond(format!("aws:ResourceTag/{}", "env"), "prod");
        assert!(matches!(built.0, Cow::Owned(ref k) if k == "aws:ResourceTag/env"));
        let pairs = owned_conditions(vec![
            ("a".to_string(), "1".to_string()),
            ("a".to_string(), "2".to_string()),
        ]);
        assert_eq!(pairs, vec![cond("a", "1"), cond("a", "2")]);
    }
}
