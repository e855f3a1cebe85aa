//! STS (awsQuery, version 2011-06-15).

use tresor_wire::AwsError;
use tresor_wire::query::QueryParams;
use tresor_wire::xml::XmlWriter;

use crate::ctx::{CallerKind, RequestCtx};
use crate::dispatch::Services;

/// `GetCallerIdentity`: no permission needed; an explicit deny does not apply (botocore
/// model documentation of the operation).
pub fn get_caller_identity(
    _services: &Services,
    ctx: &RequestCtx,
    _input: &QueryParams,
) -> Result<Option<String>, AwsError> {
    let caller = &ctx.caller;
    let mut w = XmlWriter::new();
    w.elem("UserId", &caller.user_id)
        .elem("Account", &caller.account)
        .elem("Arn", &caller.arn);
    debug_assert!(matches!(
        caller.kind,
        CallerKind::Root | CallerKind::User { .. } | CallerKind::AssumedRole { .. }
    ));
    Ok(Some(w.finish()))
}
