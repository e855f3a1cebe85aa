//! `Invoke` (`lambda:InvokeFunction`): `RequestResponse` runs the function and returns its
//! result; `Event` queues it and answers 202; `DryRun` checks access and answers 204. A
//! handler exception comes back as status 200 with `X-Amz-Function-Error: Unhandled` and
//! the error JSON (Invoke API reference). No store transaction is held while the function
//! runs: it calls back into tresor with its execution role.

use std::sync::Arc;

use tresor_core::{RequestCtx, Services};

use crate::errors::LambdaError;
use crate::exec::{self, Invocation};
use crate::functions::{load, open_code};
use crate::shapes::{InvokeInput, InvokeOutput, opaque::Opaque};

/// Payload limits (Lambda quotas): 6 MB synchronous, 1 MB asynchronous.
const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;

pub fn invoke(
    services: &Services,
    ctx: &RequestCtx,
    input: InvokeInput,
) -> Result<InvokeOutput, LambdaError> {
    let (record, code) = {
        let txn = services.store().begin_read()?;
        let (_, record) = load(
            services,
            &*txn,
            ctx,
            "lambda:InvokeFunction",
            &input.function_name,
            input.qualifier.as_deref(),
        )?;
        let code = open_code(services, &*txn, &record)?;
        (record, code)
    };
    let invocation_type = input
        .invocation_type
        .as_deref()
        .unwrap_or("RequestResponse");
    if !matches!(invocation_type, "RequestResponse" | "Event" | "DryRun") {
        return Err(LambdaError::Validation(format!(
            "1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
        )));
    }
    let tail = match input.log_type.as_deref() {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(LambdaError::Validation(format!(
                "1 validation error detected: Value '{other}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [None, Tail]"
            )));
        }
    };
    let payload = input.payload.map(|p| p.0).unwrap_or_default();
    let limit = if invocation_type == "Event" {
        MAX_ASYNC_PAYLOAD
    } else {
        MAX_SYNC_PAYLOAD
    };
    if payload.len() > limit {
        return Err(LambdaError::RequestTooLarge(format!(
            "{} byte payload is too large for the {invocation_type} invocation type (limit {limit} bytes)",
            payload.len()
        )));
    }
    if !payload.iter().all(u8::is_ascii_whitespace)
        && serde_json::from_slice::<serde_json::Value>(&payload).is_err()
    {
        return Err(LambdaError::InvalidRequestContent(
            "Could not parse request body into json: Could not parse payload into json".into(),
        ));
    }
    if invocation_type == "DryRun" {
        return Ok(InvokeOutput {
            status_code: 204,
            function_error: None,
            log_result: None,
            executed_version: None,
            payload: None,
        });
    }
    let executor = exec::executor(services)?;
    if invocation_type == "Event" {
        let request_id = ctx.request_id.clone();
        let services = services_handle(services)?;
        let spawned = std::thread::Builder::new()
            .name("lambda-event".into())
            .spawn(move || {
                let inv = Invocation {
                    request_id: &request_id,
                    record: &record,
                    code: &code,
                    payload: &payload,
                };
                match executor.invoke_queued(&services, &inv) {
                    Ok(o) => tracing::info!(request_id = %request_id, function = %record.arn, error = o.function_error.as_deref().unwrap_or("none"), "lambda: asynchronous invocation done"),
                    Err(e) => tracing::warn!(request_id = %request_id, function = %record.arn, error = %e, "lambda: asynchronous invocation failed"),
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "lambda: starting an asynchronous invocation failed");
            return Err(LambdaError::Internal);
        }
        return Ok(InvokeOutput {
            status_code: 202,
            function_error: None,
            log_result: None,
            executed_version: None,
            payload: None,
        });
    }
    let outcome = executor.invoke(
        services,
        &Invocation {
            request_id: &ctx.request_id,
            record: &record,
            code: &code,
            payload: &payload,
        },
    )?;
    Ok(InvokeOutput {
        status_code: outcome.status,
        function_error: outcome.function_error.clone(),
        log_result: tail.then(|| outcome.log_tail()),
        executed_version: Some("$LATEST".into()),
        payload: Some(Opaque(outcome.payload)),
    })
}

/// An owned handle on the kernel for work that outlives the request.
fn services_handle(services: &Services) -> Result<Arc<Services>, LambdaError> {
    services
        .extension::<crate::SelfHandle>()
        .and_then(|h| h.get())
        .ok_or_else(|| {
            LambdaError::Service("Asynchronous invocation is not configured on this server.".into())
        })
}
