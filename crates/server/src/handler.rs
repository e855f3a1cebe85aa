//! One HTTP request, start to finish: health, body limits, protocol routing (restJson1 by
//! path, awsJson1.1 by `X-Amz-Target`, awsQuery by `Action`), authentication, dispatch and
//! rendering. Every
//! failure is an AWS-shaped error; nothing here panics on input.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use time::OffsetDateTime;
use tresor_core::audit::{Facts, PendingRecord};
use tresor_core::{Caller, RequestCtx, Services};
use tresor_sigv4::{HttpRequest, SigningKeyCache};
use tresor_wire::error::{render_json, render_xml};
use tresor_wire::query::QueryParams;
use tresor_wire::route::parse_target;
use tresor_wire::xml::query_response;
use tresor_wire::{AwsError, Protocol, ServiceId, json, rest_json};

use crate::audit::event::{self, Outcome, RequestInfo, Who};
use crate::audit::redact;
use crate::audit::{Auditor, Pending};
use crate::auth;
use crate::config::Config;
use crate::dispatch::{self, Access};
use crate::metrics::{Metrics, RequestOutcome};
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
    auditor: Arc<Auditor>,
    metrics: Arc<Metrics>,
    writes: crate::writes::WritePool,
}

impl State {
    pub fn new(
        deployment: Deployment,
        config: &Config,
        _tls: bool,
        auditor: Arc<Auditor>,
    ) -> std::io::Result<Self> {
        Ok(State {
            services: deployment.services.clone(),
            keys: SigningKeyCache::new(SIGNING_KEY_CACHE),
            regions: config.regions.clone(),
            max_body_bytes: config.max_body_bytes,
            deployment: parking_lot::Mutex::new(Some(deployment)),
            metrics: auditor.metrics().clone(),
            auditor,
            writes: crate::writes::WritePool::new(config.writer_nice)?,
        })
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

/// Runs a handler inline (reads) or on a writer thread (writes, see [`crate::writes`]), then
/// the deferred writes it asked for, off the request thread, before the response goes out.
/// `pending` is the request's audit record, written into every write transaction the
/// operation commits (see [`crate::audit`]).
async fn run_operation<T: Send + 'static>(
    services: &Arc<Services>,
    writes: &crate::writes::WritePool,
    ctx: RequestCtx,
    access: Access,
    pending: Option<Arc<Pending>>,
    op: impl FnOnce(&Services, &RequestCtx) -> Result<T, AwsError> + Send + 'static,
) -> Result<T, AwsError> {
    let run = move |services: &Services, ctx: &RequestCtx| match pending {
        Some(p) => {
            let p: Arc<dyn PendingRecord> = p;
            tresor_core::audit::with_pending(p, || op(services, ctx))
        }
        None => op(services, ctx),
    };
    let (result, ctx) = if access == Access::Read {
        (run(services, &ctx), ctx)
    } else {
        let services = services.clone();
        let task = move || (run(&services, &ctx), ctx);
        let handle = match access {
            Access::Run => tokio::task::spawn_blocking(task),
            _ => writes.spawn(task),
        };
        handle.await.map_err(|e| {
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
    let started = std::time::Instant::now();
    let request_id = tresor_crypto::ids::uuid_v4();
    let (parts, body) = req.into_parts();
    if crate::conn::is_health(&parts.method, parts.uri.path()) {
        // Ready only while the store can serve (a shared database that answers).
        return match state.services.store().ready() {
            Ok(()) => respond(
                StatusCode::OK,
                "application/json",
                Bytes::from_static(b"{\"status\":\"ok\"}"),
                &request_id,
            ),
            Err(_) => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                Bytes::from_static(b"{\"status\":\"unavailable\",\"reason\":\"store\"}"),
                &request_id,
            ),
        };
    }
    if parts.uri.path() == "/metrics"
        && (parts.method == http::Method::GET || parts.method == http::Method::HEAD)
    {
        return metrics_response(state, &request_id).await;
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
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(MAX_USER_AGENT).collect());
    let call = Call {
        state,
        body: body.clone(),
        http_req: &http_req,
        request_id: &request_id,
        now,
        remote,
        tls,
        started,
        user_agent,
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
    started: std::time::Instant,
    user_agent: Option<String>,
}

impl Call<'_> {
    /// The caller of an unsigned request (`AssumeRoleWithWebIdentity`): no credential scope,
    /// so the first region served; an anonymous caller that no policy names and that has no
    /// identity policies, so anything it were asked to authorize would be denied.
    fn anonymous(&self) -> auth::Authenticated {
        auth::Authenticated {
            caller: Caller {
                account: String::new(),
                arn: "anonymous".to_string(),
                user_id: "anonymous".to_string(),
                kind: tresor_core::ctx::CallerKind::User {
                    name: String::new(),
                    path: "/".to_string(),
                    unique_id: String::new(),
                },
                access_key_id: String::new(),
            }
            .into(),
            region: self.state.regions.first().cloned().unwrap_or_default(),
            session_created: None,
            federation: None,
        }
    }

    /// The request's SigV4 check for `service`, against this server's keys and regions.
    fn authenticate(&self, service: ServiceId) -> Result<auth::Authenticated, AwsError> {
        auth::authenticate(
            &self.state.services,
            &self.state.keys,
            &self.state.regions,
            service,
            self.http_req,
            self.now,
        )
    }

    fn ctx(&self, authenticated: &auth::Authenticated) -> RequestCtx {
        RequestCtx {
            request_id: self.request_id.to_string(),
            region: authenticated.region.clone(),
            now: self.now,
            source_ip: Some(self.remote.ip()),
            secure_transport: self.tls,
            caller: authenticated.caller.clone(),
            deferred: Default::default(),
            audit: Default::default(),
        }
    }

    /// The audit record's common part for a request of `service`/`op`.
    fn info(
        &self,
        service: ServiceId,
        op: &str,
        read_only: bool,
        who: Who,
        region: String,
        request_parameters: Value,
    ) -> RequestInfo {
        RequestInfo {
            event_id: tresor_crypto::ids::uuid_v4(),
            request_id: self.request_id.to_string(),
            time: self.now,
            region,
            source_ip: Some(self.remote.ip()),
            user_agent: self.user_agent.clone(),
            who,
            service,
            event_name: op.chars().take(MAX_EVENT_NAME).collect(),
            read_only,
            request_parameters,
        }
    }

    /// Counts the request in the metrics.
    fn observe<T>(&self, service: ServiceId, op: &str, outcome: &Result<T, AwsError>) {
        let class = match outcome {
            Ok(_) => RequestOutcome::Ok,
            Err(e) => RequestOutcome::of_error(&e.code, e.status),
        };
        self.state
            .metrics
            .request(service.signing_name(), op, class, self.started.elapsed());
    }

    /// A request refused before any operation ran (authentication, unknown operation): its
    /// record is written before the refusal is sent, or the answer becomes an internal error.
    /// `op` is the operation as requested (the record's `eventName`); `known` whether tresor
    /// has it (otherwise the metrics count it as `unknown`, keeping their label set bounded).
    #[allow(clippy::too_many_arguments)]
    async fn refuse(
        &self,
        renderer: Renderer,
        service: ServiceId,
        op: &str,
        known: bool,
        authenticated: Option<&auth::Authenticated>,
        err: AwsError,
    ) -> Response<Full<Bytes>> {
        let (who, region) = match authenticated {
            Some(a) => (
                Who::Caller {
                    caller: a.caller.clone(),
                    session_created: a.session_created,
                    federation: a.federation.clone(),
                },
                a.region.clone(),
            ),
            None => {
                self.state.metrics.auth_failure(&err.code);
                let parsed = tresor_sigv4::parse(self.http_req).ok();
                let region = parsed
                    .as_ref()
                    .map(|p| p.region.clone())
                    .filter(|r| self.state.regions.contains(r))
                    .or_else(|| self.state.regions.first().cloned())
                    .unwrap_or_default();
                (
                    Who::Unauthenticated {
                        access_key_id: parsed.map(|p| p.access_key_id),
                    },
                    region,
                )
            }
        };
        let mut err = err;
        if self.state.auditor.enabled() {
            let info = self.info(service, op, false, who, region, Value::Null);
            let record = event::main_event(
                &info,
                &Facts::default(),
                &Outcome::Err {
                    code: &err.code,
                    message: err.message.as_deref(),
                },
            );
            if self.state.auditor.record(vec![record]).await.is_err() {
                err = AwsError::internal(service.protocol());
            }
        }
        let label = if known { op } else { "unknown" };
        self.observe::<()>(service, label, &Err(err.clone()));
        render_error(renderer, &err, self.request_id)
    }

    /// Runs an authenticated operation with its audit record: written with the operation's
    /// write transactions, then final before the answer; an unwritable record fails the
    /// request (see [`crate::audit`]).
    #[allow(clippy::too_many_arguments)]
    async fn audited<T: Send + 'static>(
        &self,
        service: ServiceId,
        op: &str,
        access: Access,
        request_parameters: Value,
        authenticated: &auth::Authenticated,
        call: impl FnOnce(&Services, &RequestCtx) -> Result<T, AwsError> + Send + 'static,
        response: impl FnOnce(&T) -> Option<Value>,
    ) -> Result<T, AwsError> {
        let ctx = self.ctx(authenticated);
        let caller = ctx.caller.arn.clone();
        let read_only = access == Access::Read || is_read_only_name(op);
        let pending = self.state.auditor.pending(
            self.info(
                service,
                op,
                read_only,
                Who::Caller {
                    caller: authenticated.caller.clone(),
                    session_created: authenticated.session_created,
                    federation: authenticated.federation.clone(),
                },
                authenticated.region.clone(),
                request_parameters,
            ),
            ctx.audit.clone(),
        );
        let mut outcome = run_operation(
            &self.state.services,
            &self.state.writes,
            ctx,
            access,
            pending.clone(),
            call,
        )
        .await;
        log_outcome(self.request_id, &caller, service, op, &outcome);
        if let Some(pending) = pending {
            let recorded = match &outcome {
                Ok(t) => {
                    let response = if read_only { None } else { response(t) };
                    self.state
                        .auditor
                        .finish(&pending, &Outcome::Ok { response })
                        .await
                }
                Err(e) => {
                    self.state
                        .auditor
                        .finish(
                            &pending,
                            &Outcome::Err {
                                code: &e.code,
                                message: e.message.as_deref(),
                            },
                        )
                        .await
                }
            };
            if recorded.is_err() {
                outcome = Err(AwsError::internal(service.protocol()));
            }
        }
        self.observe(service, op, &outcome);
        outcome
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
        let authenticated = match self.authenticate(service) {
            Ok(a) => a,
            Err(e) => {
                let known = dispatch::json_operation(service, op).is_some();
                return self.refuse(renderer, service, op, known, None, e).await;
            }
        };
        let Some(operation) = dispatch::json_operation(service, op) else {
            // AWS's UnknownOperationException carries no message; say which operation tresor
            // lacks, so that a user sees "not implemented" rather than an empty error.
            let err = AwsError::client(
                "UnknownOperationException",
                format!("tresor does not implement the operation {target}."),
            );
            return self
                .refuse(renderer, service, op, false, Some(&authenticated), err)
                .await;
        };
        let body = self.body.clone();
        let call = operation.call;
        let outcome = self
            .audited(
                service,
                op,
                operation.access,
                json_parameters(service, &self.body),
                &authenticated,
                move |services, ctx| call(services, ctx, &body),
                |out: &Vec<u8>| json_response(service, out),
            )
            .await;
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
        let op_name = rest_event_name(self.http_req.method, self.http_req.path);
        let authenticated = match self.authenticate(service) {
            Ok(a) => a,
            Err(e) => {
                let known = op_name != "unknown";
                return self
                    .refuse(renderer, service, op_name, known, None, e)
                    .await;
            }
        };
        let (operation, labels) = match dispatch::rest_operation(
            service,
            self.http_req.method,
            self.http_req.path,
            self.http_req.query,
        ) {
            Ok(found) => found,
            Err(e) => {
                return self
                    .refuse(renderer, service, op_name, false, Some(&authenticated), e)
                    .await;
            }
        };
        let mut parameters = serde_json::Map::new();
        for (k, v) in &labels {
            parameters.insert(k.clone(), Value::String(v.clone()));
        }
        // An invocation's payload is the caller's own data: never recorded.
        if op_name != "Invoke"
            && let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&self.body)
        {
            parameters.extend(body);
        }
        let mut parameters = redact::camel_case_top(Value::Object(parameters));
        redact::redact(service, &mut parameters);
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
        let outcome = self
            .audited(
                service,
                op_name,
                operation.access,
                parameters,
                &authenticated,
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
                |r: &rest_json::Response| {
                    if op_name == "Invoke" {
                        None
                    } else {
                        json_response(service, &r.body)
                    }
                },
            )
            .await;
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
            let anonymous = self.anonymous();
            return self
                .run_query(service, action, operation, &anonymous, &params)
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
        let action_name = params.action().unwrap_or("unknown").to_string();
        let authenticated = match self.authenticate(service) {
            Ok(a) => a,
            Err(e) => {
                let known = dispatch::query_operation(service, &action_name).is_some();
                return self
                    .refuse(renderer, service, &action_name, known, None, e)
                    .await;
            }
        };
        let Some(action) = params.action() else {
            let err = AwsError::unknown_operation(Protocol::AwsQuery);
            return self
                .refuse(
                    renderer,
                    service,
                    "unknown",
                    false,
                    Some(&authenticated),
                    err,
                )
                .await;
        };
        let Some(operation) = dispatch::query_operation(service, action) else {
            let err = if KNOWN_STS_ACTIONS.contains(&action) {
                not_implemented_action(action)
            } else {
                AwsError::invalid_action(action)
            };
            return self
                .refuse(renderer, service, action, false, Some(&authenticated), err)
                .await;
        };
        self.run_query(service, action, operation, &authenticated, &params)
            .await
    }

    /// Runs an awsQuery operation for `authenticated`, audited, and renders its response.
    async fn run_query(
        &self,
        service: ServiceId,
        action: &str,
        operation: dispatch::Operation<dispatch::QueryCall>,
        authenticated: &auth::Authenticated,
        params: &QueryParams,
    ) -> Response<Full<Bytes>> {
        let renderer = Renderer::Xml(service);
        let parameters = query_parameters(service, params);
        let call = operation.call;
        let params = params.clone();
        let outcome = self
            .audited(
                service,
                action,
                operation.access,
                parameters,
                authenticated,
                move |services, ctx| call(services, ctx, &params),
                // The XML result is not recorded (CloudTrail's response elements of IAM and
                // STS carry credentials and would need a redacting XML walk).
                |_| None,
            )
            .await;
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
const SERVED: &[&str] = &[
    "sts",
    "iam",
    "kms",
    "secretsmanager",
    "ssm",
    "lambda",
    "cloudtrail",
];

/// The longest `userAgent` an audit record keeps.
const MAX_USER_AGENT: usize = 1024;
/// The longest `eventName` an audit record keeps (a requested, unknown operation's name).
const MAX_EVENT_NAME: usize = 128;

/// Operations that only read although they run with the writers (CloudTrail's `readOnly`).
fn is_read_only_name(op: &str) -> bool {
    ["Get", "List", "Describe", "Simulate", "Lookup"]
        .iter()
        .any(|p| op.starts_with(p))
}

/// An awsJson1.1 request's `requestParameters`: the body, members in CloudTrail's casing,
/// every secret hidden.
fn json_parameters(service: ServiceId, body: &[u8]) -> Value {
    json_response(service, body).unwrap_or(Value::Null)
}

/// A JSON object (a write's result, a request's input), in CloudTrail's casing with every
/// secret hidden.
fn json_response(service: ServiceId, body: &[u8]) -> Option<Value> {
    redact::parse_redacted(service, body)
}

/// An awsQuery request's `requestParameters` (without `Action` and `Version`).
fn query_parameters(service: ServiceId, params: &QueryParams) -> Value {
    let mut map = serde_json::Map::new();
    for (k, v) in params.iter() {
        if k != "Action" && k != "Version" {
            map.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
    let mut v = redact::camel_case_top(Value::Object(map));
    redact::redact(service, &mut v);
    v
}

/// The Lambda operation a restJson1 request names, for its audit record.
fn rest_event_name(method: &str, path: &str) -> &'static str {
    let rest = path.trim_start_matches("/2015-03-31/functions");
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (method, parts.as_slice()) {
        ("POST", []) => "CreateFunction",
        ("GET", []) => "ListFunctions",
        ("GET", [_]) => "GetFunction",
        ("DELETE", [_]) => "DeleteFunction",
        ("GET", [_, "configuration"]) => "GetFunctionConfiguration",
        ("PUT", [_, "configuration"]) => "UpdateFunctionConfiguration",
        ("PUT", [_, "code"]) => "UpdateFunctionCode",
        ("POST", [_, "policy"]) => "AddPermission",
        ("GET", [_, "policy"]) => "GetPolicy",
        ("DELETE", [_, "policy", _]) => "RemovePermission",
        ("POST", [_, "invocations"]) => "Invoke",
        _ => "unknown",
    }
}

/// `/metrics`: rendered off the request threads (it reads the store).
async fn metrics_response(state: &State, request_id: &str) -> Response<Full<Bytes>> {
    let services = state.services.clone();
    let metrics = state.metrics.clone();
    match tokio::task::spawn_blocking(move || metrics.render(&services)).await {
        Ok(text) => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(text),
            request_id,
        ),
        Err(_) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"metrics unavailable\n"),
            request_id,
        ),
    }
}

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

/// The `x-amzn-RequestId` header of every answer. (The `Date` header is hyper's: it writes
/// its cached IMF-fixdate, refreshed each second, into every response that has none.)
fn set_request_id(h: &mut http::HeaderMap, request_id: &str) {
    static NAME: HeaderName = HeaderName::from_static("x-amzn-requestid");
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(NAME.clone(), v);
    }
}

/// A restJson1 response as plain data, with the request id header.
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
    set_request_id(h, request_id);
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
    set_request_id(h, request_id);
    resp
}
