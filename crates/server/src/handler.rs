//! One HTTP request, start to finish: health, body limits, protocol routing (restJson1 by
//! path, awsJson1.1 by `X-Amz-Target`, awsQuery by `Action`), authentication, dispatch and
//! rendering. Every
//! failure is an AWS-shaped error; nothing here panics on input.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use time::OffsetDateTime;
use tresor_core::{RequestCtx, Services};
use tresor_sigv4::{HttpRequest, SigningKeyCache};
use tresor_wire::error::{render_json, render_xml};
use tresor_wire::query::QueryParams;
use tresor_wire::route::parse_target;
use tresor_wire::timefmt::http_date;
use tresor_wire::xml::query_response;
use tresor_wire::{AwsError, Protocol, ServiceId, json, rest_json};

use crate::auth;
use crate::config::Config;
use crate::dispatch::{self, Access};
use crate::setup::Deployment;

const SIGNING_KEY_CACHE: usize = 4096;
/// The body limit of restJson1 requests (Lambda's CreateFunction and UpdateFunctionCode carry
/// a deployment package), unless `max_body_bytes` is larger.
const REST_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// How much of an oversized body is read and discarded before the 413 is sent.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

async fn drain(mut body: Incoming, limit: usize) {
    let mut seen = 0usize;
    while seen < limit {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}

/// Shared state of the request handler.
pub struct State {
    services: Arc<Services>,
    keys: SigningKeyCache,
    regions: Vec<String>,
    max_body_bytes: usize,
    deployment: parking_lot::Mutex<Option<Deployment>>,
}

impl State {
    pub fn new(deployment: Deployment, config: &Config, _tls: bool) -> Self {
        State {
            services: deployment.services.clone(),
            keys: SigningKeyCache::new(SIGNING_KEY_CACHE),
            regions: config.regions.clone(),
            max_body_bytes: config.max_body_bytes,
            deployment: parking_lot::Mutex::new(Some(deployment)),
        }
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Closes the store cleanly and removes a `--dev` throwaway directory.
    pub fn close(&self) {
        if let Err(e) = self.services.store().close() {
            tracing::warn!(error = %e, "closing the store failed");
        }
        drop(self.deployment.lock().take());
    }
}

/// Serves one request; the connection loop wraps this in `hyper::service::service_fn`.
pub async fn serve_request(
    state: Arc<State>,
    req: Request<Incoming>,
    remote: SocketAddr,
    tls: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(handle(&state, req, remote, tls).await)
}

/// Runs a handler inline (reads) or on the blocking pool (writes), then the deferred writes
/// it asked for, off the request thread, before the response goes out.
async fn run_operation<T: Send + 'static>(
    services: &Arc<Services>,
    ctx: RequestCtx,
    access: Access,
    op: impl FnOnce(&Services, &RequestCtx) -> Result<T, AwsError> + Send + 'static,
) -> Result<T, AwsError> {
    let (result, ctx) = if access == Access::Read {
        (op(services, &ctx), ctx)
    } else {
        let services = services.clone();
        tokio::task::spawn_blocking(move || (op(&services, &ctx), ctx))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "an operation's task failed");
                AwsError::internal(Protocol::AwsJson11)
            })?
    };
    let deferred = ctx.deferred.take();
    if !deferred.is_empty() {
        let services = services.clone();
        let done = tokio::task::spawn_blocking(move || {
            for write in deferred {
                write(&services);
            }
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "a deferred write failed");
        }
    }
    result
}

/// Which protocol and error rendering applies, as far as it is known.
#[derive(Clone, Copy)]
enum Renderer {
    Json(Option<ServiceId>),
    Xml(ServiceId),
    Rest(ServiceId),
}

async fn handle(
    state: &State,
    req: Request<Incoming>,
    remote: SocketAddr,
    tls: bool,
) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    if crate::conn::is_health(&parts.method, parts.uri.path()) {
        return respond(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(b"{\"status\":\"ok\"}"),
            &request_id,
        );
    }
    let rest = dispatch::rest_service(parts.uri.path());
    let renderer = if let Some(service) = rest {
        Renderer::Rest(service)
    } else if parts.headers.contains_key("x-amz-target") {
        Renderer::Json(None)
    } else {
        Renderer::Xml(ServiceId::Sts)
    };
    let max_body_bytes = if rest.is_some() {
        state.max_body_bytes.max(REST_MAX_BODY_BYTES)
    } else {
        state.max_body_bytes
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_body_bytes) {
        // Read and discard what the client is already sending (up to a bound), so that it
        // receives the 413 instead of a broken pipe, then close the connection.
        drain(body, DRAIN_LIMIT).await;
        let mut resp = render_error(
            renderer,
            &AwsError::request_entity_too_large(max_body_bytes),
            &request_id,
        );
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    let body = match Limited::new(body, max_body_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let err = if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                AwsError::request_entity_too_large(max_body_bytes)
            } else {
                AwsError::client("IncompleteBody", "The request body could not be read.")
            };
            return render_error(renderer, &err, &request_id);
        }
    };
    let http_req = HttpRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
    };
    let now = OffsetDateTime::now_utc();
    let call = Call {
        state,
        body: body.clone(),
        http_req: &http_req,
        request_id: &request_id,
        now,
        remote,
        tls,
    };
    if let Some(service) = rest {
        return call.rest(service).await;
    }
    match parts.headers.get("x-amz-target") {
        Some(target) => call.json(target).await,
        None => call.query().await,
    }
}

struct Call<'a> {
    state: &'a State,
    /// The body again, owned, for an operation that runs off the request thread.
    body: Bytes,
    http_req: &'a HttpRequest<'a>,
    request_id: &'a str,
    now: OffsetDateTime,
    remote: SocketAddr,
    tls: bool,
}

impl Call<'_> {
    /// The context of an unsigned request (`AssumeRoleWithWebIdentity`): no credential scope,
    /// so the first region served; an anonymous caller that no policy names and that has no
    /// identity policies, so anything it were asked to authorize would be denied.
    fn anonymous_ctx(&self) -> RequestCtx {
        self.ctx(auth::Authenticated {
            caller: tresor_core::Caller {
                account: String::new(),
                arn: "anonymous".to_string(),
                user_id: "anonymous".to_string(),
                kind: tresor_core::ctx::CallerKind::User {
                    name: String::new(),
                    path: "/".to_string(),
                    unique_id: String::new(),
                },
                access_key_id: String::new(),
            },
            region: self.state.regions.first().cloned().unwrap_or_default(),
        })
    }

    fn ctx(&self, authenticated: auth::Authenticated) -> RequestCtx {
        RequestCtx {
            request_id: self.request_id.to_string(),
            region: authenticated.region,
            now: self.now,
            source_ip: Some(self.remote.ip()),
            secure_transport: self.tls,
            caller: authenticated.caller,
            deferred: Default::default(),
        }
    }

    async fn json(&self, target: &HeaderValue) -> Response<Full<Bytes>> {
        let unknown = || {
            render_error(
                Renderer::Json(None),
                &AwsError::unknown_operation(Protocol::AwsJson11),
                self.request_id,
            )
        };
        let Ok(target) = target.to_str() else {
            return unknown();
        };
        let Ok((service, op)) = parse_target(target) else {
            return unknown();
        };
        let renderer = Renderer::Json(Some(service));
        let authenticated = match auth::authenticate(
            &self.state.services,
            &self.state.keys,
            &self.state.regions,
            service,
            self.http_req,
            self.now,
        ) {
            Ok(a) => a,
            Err(e) => return render_error(renderer, &e, self.request_id),
        };
        let Some(operation) = dispatch::json_operation(service, op) else {
            // AWS's UnknownOperationException carries no message; say which operation tresor
            // lacks, so that a user sees "not implemented" rather than an empty error.
            let err = AwsError::client(
                "UnknownOperationException",
                format!("tresor does not implement the operation {target}."),
            );
            return render_error(renderer, &err, self.request_id);
        };
        let ctx = self.ctx(authenticated);
        let caller = ctx.caller.arn.clone();
        let body = self.body.clone();
        let call = operation.call;
        let outcome = run_operation(
            &self.state.services,
            ctx,
            operation.access,
            move |services, ctx| call(services, ctx, &body),
        )
        .await;
        log_outcome(self.request_id, &caller, service, op, &outcome);
        match outcome {
            Ok(body) => respond(
                StatusCode::OK,
                json::CONTENT_TYPE,
                Bytes::from(body),
                self.request_id,
            ),
            Err(e) => render_error(renderer, &e, self.request_id),
        }
    }

    /// A restJson1 request: authenticated for `service`, routed by method and path.
    async fn rest(&self, service: ServiceId) -> Response<Full<Bytes>> {
        let renderer = Renderer::Rest(service);
        let authenticated = match auth::authenticate(
            &self.state.services,
            &self.state.keys,
            &self.state.regions,
            service,
            self.http_req,
            self.now,
        ) {
            Ok(a) => a,
            Err(e) => return render_error(renderer, &e, self.request_id),
        };
        let (operation, labels) = match dispatch::rest_operation(
            service,
            self.http_req.method,
            self.http_req.path,
            self.http_req.query,
        ) {
            Ok(found) => found,
            Err(e) => return render_error(renderer, &e, self.request_id),
        };
        let ctx = self.ctx(authenticated);
        let caller = ctx.caller.arn.clone();
        let method = self.http_req.method.to_string();
        let path = self.http_req.path.to_string();
        let query = self.http_req.query.to_string();
        let headers: Vec<(String, String)> = self
            .http_req
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = self.body.clone();
        let call = operation.call;
        let op_name = format!("{method} {path}");
        let outcome = run_operation(
            &self.state.services,
            ctx,
            operation.access,
            move |services, ctx| {
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let req = rest_json::Request {
                    method: &method,
                    path: &path,
                    query: &query,
                    headers: &headers,
                    body: &body,
                };
                call(services, ctx, &req, &labels)
            },
        )
        .await;
        log_outcome(self.request_id, &caller, service, &op_name, &outcome);
        match outcome {
            Ok(r) => rest_response(r, self.request_id),
            Err(e) => render_error(renderer, &e, self.request_id),
        }
    }

    async fn query(&self) -> Response<Full<Bytes>> {
        let params = match self.query_params() {
            Ok(p) => p,
            Err(e) => return render_error(Renderer::Xml(ServiceId::Sts), &e, self.request_id),
        };
        let service = match auth::scope_service(self.http_req).as_deref() {
            Some("iam") => ServiceId::Iam,
            Some("sts") => ServiceId::Sts,
            // Signed for Lambda but not under its paths: no such Lambda operation.
            Some("lambda") => {
                return render_error(
                    Renderer::Rest(ServiceId::Lambda),
                    &AwsError::unknown_operation(Protocol::RestJson1),
                    self.request_id,
                );
            }
            Some(other) if !SERVED.contains(&other) => {
                return render_error(
                    Renderer::Xml(ServiceId::Sts),
                    &not_served(other),
                    self.request_id,
                );
            }
            _ => guess_query_service(params.action()),
        };
        let renderer = Renderer::Xml(service);
        // STS operations that AWS accepts unsigned run without authentication.
        if let Some(action) = params.action()
            && let Some(operation) = dispatch::unsigned_query_operation(service, action)
        {
            let action = action.to_string();
            return self
                .run_query(service, action, operation, self.anonymous_ctx(), params)
                .await;
        }
        // STS operations that AWS accepts unsigned: without an implementation they get the
        // unknown-action answer, not a demand for a signature they never carry.
        if let Some(action) = params.action()
            && service == ServiceId::Sts
            && UNSIGNED_STS_ACTIONS.contains(&action)
            && dispatch::query_operation(service, action).is_none()
        {
            return render_error(renderer, &not_implemented_action(action), self.request_id);
        }
        let authenticated = match auth::authenticate(
            &self.state.services,
            &self.state.keys,
            &self.state.regions,
            service,
            self.http_req,
            self.now,
        ) {
            Ok(a) => a,
            Err(e) => return render_error(renderer, &e, self.request_id),
        };
        let Some(action) = params.action() else {
            return render_error(
                renderer,
                &AwsError::unknown_operation(Protocol::AwsQuery),
                self.request_id,
            );
        };
        let Some(operation) = dispatch::query_operation(service, action) else {
            let err = if KNOWN_STS_ACTIONS.contains(&action) {
                not_implemented_action(action)
            } else {
                AwsError::invalid_action(action)
            };
            return render_error(renderer, &err, self.request_id);
        };
        let action = action.to_string();
        self.run_query(service, action, operation, self.ctx(authenticated), params)
            .await
    }

    /// Runs an awsQuery operation and renders its response.
    async fn run_query(
        &self,
        service: ServiceId,
        action: String,
        operation: dispatch::Operation<dispatch::QueryCall>,
        ctx: RequestCtx,
        params: QueryParams,
    ) -> Response<Full<Bytes>> {
        let renderer = Renderer::Xml(service);
        let caller = ctx.caller.arn.clone();
        let call = operation.call;
        let outcome = run_operation(
            &self.state.services,
            ctx,
            operation.access,
            move |services, ctx| call(services, ctx, &params),
        )
        .await;
        log_outcome(self.request_id, &caller, service, &action, &outcome);
        let action = action.as_str();
        match outcome {
            Ok(result) => {
                let doc = query_response(service, action, result.as_deref(), self.request_id);
                respond(
                    StatusCode::OK,
                    "text/xml",
                    Bytes::from(doc),
                    self.request_id,
                )
            }
            Err(e) => render_error(renderer, &e, self.request_id),
        }
    }

    /// awsQuery parameters: the URL's query string plus, for a form POST, the body.
    fn query_params(&self) -> Result<QueryParams, AwsError> {
        let mut params = QueryParams::parse(self.http_req.query.as_bytes())?;
        if self.http_req.method == "POST" && !self.http_req.body.is_empty() {
            params.extend(QueryParams::parse(self.http_req.body)?)?;
        }
        Ok(params)
    }
}

/// The SigV4 service names tresor answers for.
const SERVED: &[&str] = &["sts", "iam", "kms", "secretsmanager", "ssm", "lambda"];

/// STS operations AWS accepts without a signature (STS API reference, AssumeRoleWithSAML and
/// AssumeRoleWithWebIdentity: "Calling AssumeRoleWith… does not require the use of AWS
/// security credentials").
const UNSIGNED_STS_ACTIONS: &[&str] = &["AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"];

/// A request for an AWS service tresor does not serve (`aws ec2 …`, `aws s3 ls`): say so
/// plainly instead of a signature error about the credential scope.
fn not_served(service: &str) -> AwsError {
    let service: String = service
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    AwsError::client(
        "InvalidAction",
        format!(
            "tresor does not serve the AWS service '{service}'; it serves {}.",
            SERVED.join(", ")
        ),
    )
}

/// An action of a served service that tresor does not implement (yet).
fn not_implemented_action(action: &str) -> AwsError {
    AwsError::client(
        "InvalidAction",
        format!("The action {action} is not implemented by tresor."),
    )
}

/// Without a credential scope to go by, an awsQuery action names its service.
fn guess_query_service(action: Option<&str>) -> ServiceId {
    if action.is_some_and(|a| {
        KNOWN_STS_ACTIONS.contains(&a)
            || dispatch::unsigned_query_operation(ServiceId::Sts, a).is_some()
    }) {
        ServiceId::Sts
    } else if action.is_some() {
        ServiceId::Iam
    } else {
        ServiceId::Sts
    }
}

/// Every STS action AWS has (botocore's sts service model).
const KNOWN_STS_ACTIONS: &[&str] = &[
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "AssumeRoot",
    "DecodeAuthorizationMessage",
    "GetAccessKeyInfo",
    "GetCallerIdentity",
    "GetDelegatedAccessToken",
    "GetFederationToken",
    "GetSessionToken",
    "GetWebIdentityToken",
];

/// One line per request at `debug`: who, which operation, and the outcome — never an input
/// or output value.
fn log_outcome<T>(
    request_id: &str,
    caller: &str,
    service: ServiceId,
    op: &str,
    outcome: &Result<T, AwsError>,
) {
    match outcome {
        Ok(_) => tracing::debug!(request_id, caller, ?service, op, "ok"),
        Err(e) => {
            tracing::debug!(request_id, caller, ?service, op, code = %e.code, status = e.status, "refused")
        }
    }
}

fn render_error(renderer: Renderer, err: &AwsError, request_id: &str) -> Response<Full<Bytes>> {
    if err.is_server_fault() {
        tracing::warn!(request_id, code = %err.code, "request failed with a server fault");
    } else {
        tracing::debug!(request_id, code = %err.code, "request refused");
    }
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_REQUEST);
    match renderer {
        Renderer::Rest(service) => rest_response(
            rest_json::render_error(err, tresor_wire::error::message_case(service, &err.code)),
            request_id,
        ),
        Renderer::Json(service) => respond(
            status,
            json::CONTENT_TYPE,
            Bytes::from(render_json(service, err)),
            request_id,
        ),
        Renderer::Xml(service) => respond(
            status,
            "text/xml",
            Bytes::from(render_xml(service, err, request_id)),
            request_id,
        ),
    }
}

/// A restJson1 response as plain data, with the request id and date headers.
fn rest_response(r: rest_json::Response, request_id: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    for (name, value) in r.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.insert(n, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(OffsetDateTime::now_utc())) {
        h.insert(header::DATE, v);
    }
    resp
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(OffsetDateTime::now_utc())) {
        h.insert(header::DATE, v);
    }
    resp
}
