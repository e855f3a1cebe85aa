//! Lambda as other services call it: [`LambdaFunctions`] implements the kernel's
//! [`Functions`] seam, so that Secrets Manager can invoke a rotation function as the service
//! principal `secretsmanager.amazonaws.com`. The function's resource policy decides, with
//! `aws:SourceAccount` and `aws:SourceArn` (Lambda Developer Guide, "Granting function access
//! to AWS services").

use time::OffsetDateTime;
use tresor_core::functions::{FunctionError, Functions, ServiceInvoke};
use tresor_core::{Services, record};

use crate::errors::LambdaError;
use crate::exec::{self, Invocation};
use crate::functions::open_code;
use crate::model::{self, FunctionRecord, keys};
use crate::permissions::service_may_invoke;

/// The [`Functions`] implementation the server plugs in.
#[derive(Clone, Copy, Debug, Default)]
pub struct LambdaFunctions;

/// A deployment package, unsealed.
type Package = zeroize::Zeroizing<Vec<u8>>;

/// The function, if the service principal may invoke it, and its package when `with_code`.
fn read(
    services: &Services,
    call: &ServiceInvoke<'_>,
    with_code: bool,
) -> Result<(FunctionRecord, Option<Package>), FunctionError> {
    let not_found = || FunctionError::NotFound(call.function_arn.to_string());
    let f = model::parse_function_name(call.function_arn, call.source_account, "")
        .map_err(|_| not_found())?;
    if f.qualifier.as_deref().is_some_and(|q| q != "$LATEST") || f.region.is_empty() {
        return Err(not_found());
    }
    let txn = services
        .store()
        .begin_read()
        .map_err(|e| FunctionError::Unavailable(format!("store: {e}")))?;
    let record: FunctionRecord =
        record::get(&*txn, &keys::function(&f.account, &f.region, &f.name))
            .map_err(|e| FunctionError::Unavailable(format!("store: {e}")))?
            .ok_or_else(not_found)?;
    if !service_may_invoke(
        services,
        &record,
        call.service_principal,
        call.source_account,
        call.source_arn,
        OffsetDateTime::now_utc(),
    ) {
        return Err(FunctionError::AccessDenied(
            call.service_principal.to_string(),
        ));
    }
    if !with_code {
        return Ok((record, None));
    }
    let code = open_code(services, &*txn, &record)
        .map_err(|e| FunctionError::Unavailable(e.to_string()))?;
    Ok((record, Some(code)))
}

impl Functions for LambdaFunctions {
    fn check_service_invoke(
        &self,
        services: &Services,
        call: &ServiceInvoke<'_>,
    ) -> Result<(), FunctionError> {
        read(services, call, false).map(|_| ())
    }

    fn invoke_as_service(
        &self,
        services: &Services,
        call: &ServiceInvoke<'_>,
        payload: &[u8],
    ) -> Result<Vec<u8>, FunctionError> {
        let (record, code) = read(services, call, true)?;
        let code = code.unwrap_or_default();
        let executor =
            exec::executor(services).map_err(|e| FunctionError::Unavailable(e.to_string()))?;
        let request_id = uuid::Uuid::new_v4().to_string();
        tracing::info!(
            request_id = %request_id,
            function = %record.arn,
            principal = call.service_principal,
            source = call.source_arn,
            "lambda: invoked by a service"
        );
        let outcome = executor
            .invoke_queued(
                services,
                &Invocation {
                    request_id: &request_id,
                    record: &record,
                    code: &code,
                    payload,
                },
            )
            .map_err(|e| match e {
                LambdaError::InvalidParameterValue(m)
                | LambdaError::InvalidRuntime(m)
                | LambdaError::Service(m)
                | LambdaError::TooManyRequests(m) => FunctionError::Unavailable(m),
                other => FunctionError::Unavailable(other.to_string()),
            })?;
        if outcome.function_error.is_some() || !(200..300).contains(&outcome.status) {
            let error: serde_json::Value =
                serde_json::from_slice(&outcome.payload).unwrap_or(serde_json::Value::Null);
            let field = |k: &str| error.get(k).and_then(|v| v.as_str()).map(str::to_string);
            return Err(FunctionError::Failed {
                error_type: field("errorType").unwrap_or_else(|| "Unhandled".into()),
                error_message: field("errorMessage").unwrap_or_default(),
            });
        }
        Ok(outcome.payload)
    }
}
