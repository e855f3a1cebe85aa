//! The `EvaluationResult` XML.

use super::*;

// Output.

pub(super) fn write_result(
    w: &mut XmlWriter,
    action: &str,
    resources: &[&str],
    outcomes: &[Outcome],
    specific: bool,
) {
    let decision = outcomes
        .iter()
        .map(|o| o.decision)
        .max_by_key(|d| restrictiveness(d))
        .unwrap_or("implicitDeny");
    let mut matched: Vec<&Matched> = Vec::new();
    let mut seen: HashSet<&Matched> = HashSet::new();
    let mut missing: Vec<&str> = Vec::new();
    let mut seen_keys: HashSet<String> = HashSet::new();
    for o in outcomes {
        for m in &o.matched {
            if seen.insert(m) {
                matched.push(m);
            }
        }
        for k in &o.missing {
            if seen_keys.insert(k.to_ascii_lowercase()) {
                missing.push(k);
            }
        }
    }
    let boundary = outcomes
        .iter()
        .map(|o| o.boundary_allows)
        .try_fold(true, |all, b| b.map(|b| all && b));
    w.open("member")
        .elem("EvalActionName", action)
        .elem("EvalResourceName", &top_resource_name(resources))
        .elem("EvalDecision", decision);
    write_statements(w, matched.into_iter());
    write_keys(w, missing.into_iter());
    write_boundary_detail(w, boundary);
    if specific {
        // "If the simulation evaluates policies within the same account and includes a
        // resource ARN, then the parameter is present but the response is empty."
        w.open("EvalDecisionDetails").close("EvalDecisionDetails");
        w.open("ResourceSpecificResults");
        for o in outcomes {
            w.open("member")
                .elem("EvalResourceName", &o.resource)
                .elem("EvalResourceDecision", o.decision);
            write_statements(w, o.matched.iter());
            write_keys(w, o.missing.iter().map(String::as_str));
            write_boundary_detail(w, o.boundary_allows);
            w.close("member");
        }
        w.close("ResourceSpecificResults");
    }
    w.close("member");
}

pub(super) fn restrictiveness(decision: &str) -> u8 {
    match decision {
        "explicitDeny" => 2,
        "implicitDeny" => 1,
        _ => 0,
    }
}

pub(super) fn write_statements<'m>(
    w: &mut XmlWriter,
    statements: impl Iterator<Item = &'m Matched>,
) {
    w.open("MatchedStatements");
    for m in statements {
        w.open("member")
            .elem("SourcePolicyId", &m.id)
            .elem("SourcePolicyType", m.source_type);
        if let Some((start, end)) = m.span {
            for (tag, (line, column)) in [("StartPosition", start), ("EndPosition", end)] {
                w.open(tag)
                    .elem("Line", &line.to_string())
                    .elem("Column", &column.to_string())
                    .close(tag);
            }
        }
        w.close("member");
    }
    w.close("MatchedStatements");
}

pub(super) fn write_keys<'k>(w: &mut XmlWriter, keys: impl Iterator<Item = &'k str>) {
    w.open("MissingContextValues");
    for k in keys {
        w.elem("member", k);
    }
    w.close("MissingContextValues");
}

pub(super) fn write_boundary_detail(w: &mut XmlWriter, allowed: Option<bool>) {
    if let Some(allowed) = allowed {
        w.open("PermissionsBoundaryDecisionDetail")
            .elem(
                "AllowedByPermissionsBoundary",
                if allowed { "true" } else { "false" },
            )
            .close("PermissionsBoundaryDecisionDetail");
    }
}

/// The top-level `EvalResourceName`: the resource itself when only one was simulated (`*`
/// included); for several, the ARN template of their common resource type, else `*`.
pub(super) fn top_resource_name(resources: &[&str]) -> String {
    if let [one] = resources {
        return (*one).to_string();
    }
    let templates: Option<Vec<&str>> = resources.iter().map(|r| arn_template(r)).collect();
    templates
        .and_then(|t| t.first().copied().filter(|f| t.iter().all(|x| x == f)))
        .unwrap_or("*")
        .to_string()
}

/// ARN formats of the resource types tresor serves (Service Authorization Reference).
pub(super) fn arn_template(arn: &str) -> Option<&'static str> {
    let mut f = arn.splitn(6, ':');
    let service = f.nth(2)?;
    let resource = f.nth(2)?;
    let kind = resource.split(['/', ':']).next()?;
    Some(match (service, kind) {
        ("secretsmanager", "secret") => {
            "arn:${Partition}:secretsmanager:${Region}:${Account}:secret:${SecretId}"
        }
        ("kms", "key") => "arn:${Partition}:kms:${Region}:${Account}:key/${KeyId}",
        ("kms", "alias") => "arn:${Partition}:kms:${Region}:${Account}:alias/${Alias}",
        ("ssm", "parameter") => {
            "arn:${Partition}:ssm:${Region}:${Account}:parameter/${ParameterNameWithoutLeadingSlash}"
        }
        ("iam", "user") => "arn:${Partition}:iam::${Account}:user/${UserNameWithPath}",
        ("iam", "role") => "arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}",
        ("iam", "group") => "arn:${Partition}:iam::${Account}:group/${GroupNameWithPath}",
        ("iam", "policy") => "arn:${Partition}:iam::${Account}:policy/${PolicyNameWithPath}",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
