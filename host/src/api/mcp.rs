//! MCP over Streamable HTTP, stateless, on the official Rust SDK (rmcp):
//! two tools, `send_to_peer` and `message_status`. The caller's identity comes with each
//! request in the `X-IAPeer-Identity` header (every session the host
//! launches has `PEER_IDENTITY` in its environment for its client config to
//! send).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, ListToolsResult, MetaObject, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};

use super::{ApiState, MAX_BODY_BYTES};
use crate::route::{self, Door, SendRequest, StatusRequest};

pub(crate) const TOOL: &str = "send_to_peer";
pub(crate) const STATUS_TOOL: &str = "message_status";
pub(crate) const IDENTITY_HEADER: &str = "x-iapeer-identity";

/// The tower service mounted at `/mcp`: a fresh handler per request, no
/// sessions, plain JSON responses.
pub(super) fn service(
    state: Arc<ApiState>,
) -> StreamableHttpService<PeerTool, NeverSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        // Host and Origin are checked by the router for every endpoint.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        // Not the daemon's shutdown token: on shutdown the listeners stop
        // accepting, but a call in flight must still get its answer.
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    StreamableHttpService::new(
        move || Ok(PeerTool(state.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

#[derive(Clone)]
pub(super) struct PeerTool(Arc<ApiState>);

pub(crate) fn tool() -> Tool {
    // Derived from the type the arguments are read into: the two agree.
    let schema = rmcp::handler::server::common::schema_for_input::<SendRequest>()
        .expect("the send request's schema is an object");
    let mut meta = serde_json::Map::new();
    meta.insert("anthropic/alwaysLoad".into(), Value::Bool(true));
    Tool::new(
        TOOL,
        "Send a message to another peer (an agent session or a bridge). A sleeping peer is \
         woken and receives the message as its first input; a live one gets it when it is \
         ready for input. The result says where it was delivered, or that it is queued (with \
         its id and why: it is kept and delivered later), or the error says it was NOT \
         delivered.",
        schema,
    )
    .with_meta(MetaObject(meta))
}

pub(crate) fn status_tool() -> Tool {
    let schema = rmcp::handler::server::common::schema_for_input::<StatusRequest>()
        .expect("the status request's schema is an object");
    Tool::new(
        STATUS_TOOL,
        "What became of a message sent with send_to_peer, by the id it returned: queued \
         (and why), delivered (when, to which session) or dead-lettered (why).",
        schema,
    )
}

/// A JSON-RPC error answer for a request that never reached the SDK.
fn rpc_error(status: StatusCode, code: i64, message: String) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// Requests the SDK would refuse with a bare text body get a clear
/// JSON-RPC error instead: a body that is not JSON (400, -32700), a batch
/// (400, -32600: MCP over HTTP sends one message per request), any method
/// but POST (405: a stateless server offers no stream and no session to
/// delete). The body was already read and size-capped by the router.
pub(super) async fn parse_gate(req: Request, next: Next) -> Response {
    if req.method() != http::Method::POST {
        return rpc_error(
            StatusCode::METHOD_NOT_ALLOWED,
            -32600,
            "only POST is served here (stateless: no stream, no session)".into(),
        );
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    // `Value` (not `IgnoredAny`): serde_json's nesting limit applies.
    match serde_json::from_slice::<Value>(&bytes) {
        Err(e) => rpc_error(StatusCode::BAD_REQUEST, -32700, format!("parse error: {e}")),
        Ok(Value::Array(_)) => rpc_error(
            StatusCode::BAD_REQUEST,
            -32600,
            "batch requests are not supported".into(),
        ),
        // The SDK answers arguments that are not an object with a bare
        // "method not found"; say what is wrong instead.
        Ok(v)
            if v["method"] == "tools/call"
                && !matches!(v["params"]["arguments"], Value::Object(_) | Value::Null) =>
        {
            let body = json!({"jsonrpc": "2.0", "id": v["id"], "error": {"code": -32602,
                "message": "invalid params: arguments must be an object; message NOT delivered"}});
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Ok(_) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    }
}

fn tool_error(message: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(message)]).into()
}

impl ServerHandler for PeerTool {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("iapeer", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![tool(), status_tool()]))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        match name {
            TOOL => Some(tool()),
            STATUS_TOOL => Some(status_tool()),
            _ => None,
        }
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        if request.name == STATUS_TOOL {
            return Ok(self.status(arguments).await);
        }
        if request.name != TOOL {
            return Ok(tool_error(format!("unknown tool: {}", request.name)));
        }
        let req = match SendRequest::from_json(arguments) {
            Ok(r) => r,
            Err(e) => {
                return Ok(tool_error(format!(
                    "invalid arguments: {e}; message NOT delivered"
                )));
            }
        };
        // The arguments first, then who sends them (as documented).
        let header = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.headers.get(IDENTITY_HEADER))
            .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
        let caller = match route::parse_caller(header.as_deref()) {
            Ok(c) => c,
            Err(e) => return Ok(tool_error(e.to_string())),
        };
        let state = self.0.clone();
        let lc = state.lifecycle();
        tracing::debug!(caller = %caller, to = %req.personality, "tools/call send_to_peer");
        let result = state
            .run(async move { route::send(&lc, &caller, &req, Door::Mcp).await })
            .await
            .map_err(|e| ErrorData::internal_error(format!("send_to_peer panicked: {e}"), None))?;
        Ok(match result {
            Ok(outcome) => structured(&outcome),
            Err(e) => tool_error(e.to_string()),
        })
    }
}

impl PeerTool {
    async fn status(&self, arguments: Value) -> CallToolResponse {
        let req = match StatusRequest::from_json(arguments) {
            Ok(r) => r,
            Err(e) => return tool_error(format!("invalid arguments: {e}")),
        };
        let lc = self.0.lifecycle();
        let status = self
            .0
            .run(async move { route::message_status(&lc, &req.id) })
            .await;
        match status {
            Ok(Ok(status)) => structured(&status),
            Ok(Err(e)) => tool_error(e),
            Err(e) => tool_error(format!("message_status panicked: {e}")),
        }
    }
}

/// A tool's success: the value as pretty text and as `structuredContent`.
fn structured(value: &impl serde::Serialize) -> CallToolResponse {
    let value = serde_json::to_value(value).unwrap_or(Value::Null);
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let mut ok = CallToolResult::success(vec![ContentBlock::text(text)]);
    ok.structured_content = Some(value);
    ok.into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// The schema a client sees is the request type's: the same names,
    /// limits and refusals the daemon applies.
    #[test]
    fn the_input_schema_is_derived_from_the_request() {
        let schema = serde_json::Value::Object((*super::tool().input_schema).clone());
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(schema["required"], json!(["personality", "message"]));
        let p = &schema["properties"];
        assert_eq!(
            p["personality"]["pattern"],
            json!("^[a-z][a-z0-9-]{0,31}(@[a-z][a-z0-9-]{0,31})?$")
        );
        assert_eq!(
            p["personality"]["description"],
            json!(
                "The peer to message (`bob`, or `bob@host` to name its host in a fleet across machines)."
            )
        );
        assert_eq!(p["message"]["maxLength"], json!(16000));
        assert_eq!(p["message"]["minLength"], json!(1));
        assert_eq!(p["topic"]["maxLength"], json!(200));
        assert_eq!(p["attachments"]["maxItems"], json!(20));
        assert!(schema.get("$defs").is_none(), "names are inline");
    }
}
