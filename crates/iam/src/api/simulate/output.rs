//! The output: `SimulatePolicyResponse` as botocore's iam model names its members.

use std::collections::BTreeMap;

use serde::Serialize;

use std::collections::HashSet;

use tresor_policy::Position;

use super::outcome::*;

// Output.

/// `SimulatePolicyResponse` (botocore's iam model), members in the model's order.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct SimulatePolicyResponse {
    pub evaluation_results: Vec<EvaluationResult>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// `EvaluationResult`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct EvaluationResult {
    pub eval_action_name: String,
    pub eval_resource_name: String,
    pub eval_decision: &'static str,
    pub matched_statements: Vec<Statement>,
    pub missing_context_values: Vec<String>,
    pub permissions_boundary_decision_detail: Option<PermissionsBoundaryDecisionDetail>,
    /// Present (and empty) when specific resources were simulated: "If the simulation
    /// evaluates policies within the same account and includes a resource ARN, then the
    /// parameter is present but the response is empty."
    pub eval_decision_details: Option<BTreeMap<String, String>>,
    pub resource_specific_results: Option<Vec<ResourceSpecificResult>>,
}

/// `ResourceSpecificResult`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceSpecificResult {
    pub eval_resource_name: String,
    pub eval_resource_decision: &'static str,
    pub matched_statements: Vec<Statement>,
    pub missing_context_values: Vec<String>,
    pub permissions_boundary_decision_detail: Option<PermissionsBoundaryDecisionDetail>,
}

/// `Statement` (a matched statement).
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub source_policy_id: String,
    pub source_policy_type: &'static str,
    pub start_position: Option<TextPosition>,
    pub end_position: Option<TextPosition>,
}

/// `Position`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct TextPosition {
    pub line: usize,
    pub column: usize,
}

/// `PermissionsBoundaryDecisionDetail`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct PermissionsBoundaryDecisionDetail {
    pub allowed_by_permissions_boundary: bool,
}

/// One action's result from its per-resource outcomes.
pub(super) fn result_of(
    action: &str,
    resources: &[&str],
    outcomes: Vec<Outcome>,
    specific: bool,
) -> EvaluationResult {
    let decision = outcomes
        .iter()
        .map(|o| o.decision)
        .max_by_key(|d| restrictiveness(d))
        .unwrap_or("implicitDeny");
    let mut matched: Vec<Statement> = Vec::new();
    let mut seen: HashSet<&Matched> = HashSet::new();
    let mut missing: Vec<String> = Vec::new();
    let mut seen_keys: HashSet<String> = HashSet::new();
    for o in &outcomes {
        for m in &o.matched {
            if seen.insert(m) {
                matched.push(statement(m));
            }
        }
        for k in &o.missing {
            if seen_keys.insert(k.to_ascii_lowercase()) {
                missing.push(k.clone());
            }
        }
    }
    let boundary = outcomes
        .iter()
        .map(|o| o.boundary_allows)
        .try_fold(true, |all, b| b.map(|b| all && b));
    let specific_results = specific.then(|| {
        outcomes
            .into_iter()
            .map(|o| ResourceSpecificResult {
                eval_resource_decision: o.decision,
                matched_statements: o.matched.iter().map(statement).collect(),
                missing_context_values: o.missing,
                permissions_boundary_decision_detail: boundary_detail(o.boundary_allows),
                eval_resource_name: o.resource,
            })
            .collect()
    });
    EvaluationResult {
        eval_action_name: action.to_string(),
        eval_resource_name: top_resource_name(resources),
        eval_decision: decision,
        matched_statements: matched,
        missing_context_values: missing,
        permissions_boundary_decision_detail: boundary_detail(boundary),
        eval_decision_details: specific.then(BTreeMap::new),
        resource_specific_results: specific_results,
    }
}

pub(super) fn restrictiveness(decision: &str) -> u8 {
    match decision {
        "explicitDeny" => 2,
        "implicitDeny" => 1,
        _ => 0,
    }
}

fn statement(m: &Matched) -> Statement {
    let position = |(line, column): Position| TextPosition { line, column };
    Statement {
        source_policy_id: m.id.clone(),
        source_policy_type: m.source_type,
        start_position: m.span.map(|(start, _)| position(start)),
        end_position: m.span.map(|(_, end)| position(end)),
    }
}

fn boundary_detail(allowed: Option<bool>) -> Option<PermissionsBoundaryDecisionDetail> {
    allowed.map(
        |allowed_by_permissions_boundary| PermissionsBoundaryDecisionDetail {
            allowed_by_permissions_boundary,
        },
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_the_hand_written_xml_did() {
        let matched = Matched {
            id: "PolicyInputList.1".to_string(),
            source_type: "IAM Policy",
            span: Some(((1, 38), (1, 90))),
        };
        let outcome = Outcome {
            resource: "arn:aws:s3:::b".to_string(),
            decision: "allowed",
            matched: vec![matched],
            missing: vec!["aws:SourceIp".to_string()],
            boundary_allows: Some(true),
        };
        let out = SimulatePolicyResponse {
            evaluation_results: vec![result_of(
                "s3:GetObject",
                &["arn:aws:s3:::b"],
                vec![outcome],
                true,
            )],
            is_truncated: true,
            marker: Some("m".to_string()),
        };
        let statement = "<member><SourcePolicyId>PolicyInputList.1</SourcePolicyId><SourcePolicyType>IAM Policy</SourcePolicyType><StartPosition><Line>1</Line><Column>38</Column></StartPosition><EndPosition><Line>1</Line><Column>90</Column></EndPosition></member>";
        let details = "<MissingContextValues><member>aws:SourceIp</member></MissingContextValues><PermissionsBoundaryDecisionDetail><AllowedByPermissionsBoundary>true</AllowedByPermissionsBoundary></PermissionsBoundaryDecisionDetail>";
        let want = format!(
            "<EvaluationResults><member><EvalActionName>s3:GetObject</EvalActionName><EvalResourceName>arn:aws:s3:::b</EvalResourceName><EvalDecision>allowed</EvalDecision><MatchedStatements>{statement}</MatchedStatements>{details}<EvalDecisionDetails></EvalDecisionDetails><ResourceSpecificResults><member><EvalResourceName>arn:aws:s3:::b</EvalResourceName><EvalResourceDecision>allowed</EvalResourceDecision><MatchedStatements>{statement}</MatchedStatements>{details}</member></ResourceSpecificResults></member></EvaluationResults><IsTruncated>true</IsTruncated><Marker>m</Marker>"
        );
        assert_eq!(tresor_wire::xml::encode(&out).ok().flatten(), Some(want));
        let empty = SimulatePolicyResponse {
            evaluation_results: Vec::new(),
            is_truncated: false,
            marker: None,
        };
        assert_eq!(
            tresor_wire::xml::encode(&empty).ok().flatten().as_deref(),
            Some("<EvaluationResults></EvaluationResults><IsTruncated>false</IsTruncated>")
        );
    }
}
