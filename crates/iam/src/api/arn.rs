//! IAM ARNs.

/// The parts of an IAM ARN `arn:aws:iam::<account>:<type>/<path…><name>`: account, type,
/// path (`/` or `/a/b/`) and name. `None` when it is not one.
pub(crate) fn parse_iam_arn(arn: &str) -> Option<(&str, &str, String, &str)> {
    let rest = tresor_policy::arn::strip_service_prefix(arn, "iam")?.strip_prefix(':')?;
    let (account, resource) = rest.split_once(':')?;
    let (kind, tail) = resource.split_once('/')?;
    let (path, name) = match tail.rfind('/') {
        Some(i) => (format!("/{}", &tail[..=i]), &tail[i + 1..]),
        None => ("/".to_string(), tail),
    };
    if account.is_empty() || name.is_empty() {
        return None;
    }
    Some((account, kind, path, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_arns_split_into_account_type_path_and_name() {
        assert_eq!(
            parse_iam_arn("arn:aws:iam::123456789012:role/a/b/ci"),
            Some(("123456789012", "role", "/a/b/".to_string(), "ci"))
        );
        assert_eq!(
            parse_iam_arn("arn:aws:iam::aws:policy/AdministratorAccess"),
            Some(("aws", "policy", "/".to_string(), "AdministratorAccess"))
        );
        assert_eq!(parse_iam_arn("arn:aws:iam::1:root"), None);
        assert_eq!(
            parse_iam_arn("arn:aws:sts::1:assumed-role/r/s").map(|x| x.1),
            None
        );
    }
}
