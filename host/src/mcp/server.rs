//! The MCP server handler: the tool table (assembled from `tools/*`) and the
//! `tools/call` dispatch.

use std::sync::Arc;

use axum::Router;
use axum::http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Extensions, Implementation, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use super::rest::Rest;

/// Shown to clients at `initialize`.
const INSTRUCTIONS: &str = "Bay sandboxes for AI agents. Create a sandbox (create_sandbox; list_profiles shows the profiles), \
run code in it (execute_python, execute_shell, execute_browser), move files (write_file, read_file, upload_file and \
download_file with base64 content), and delete it when done (delete_sandbox). Files live in /workspace; paths are relative to it.";

/// One MCP request's server (rmcp builds one per request: the transport is stateless).
#[derive(Clone)]
pub(crate) struct BayMcp {
    rest: Router,
    tools: Arc<ToolRouter<BayMcp>>,
}

impl BayMcp {
    pub(crate) fn new(rest: Router, tools: Arc<ToolRouter<BayMcp>>) -> BayMcp {
        BayMcp { rest, tools }
    }

    /// Every tool, once per process.
    pub(crate) fn tools() -> ToolRouter<BayMcp> {
        Self::sandbox_tools()
            + Self::exec_tools()
            + Self::file_tools()
            + Self::history_tools()
            + Self::skill_tools()
            + Self::browser_tools()
            + Self::cargo_tools()
            + Self::profile_tools()
    }

    /// A REST client acting as the sender of this tool call's HTTP request.
    pub(crate) fn rest(&self, ext: &Extensions) -> Rest {
        Rest::new(self.rest.clone(), ext.get::<Parts>())
    }
}

/// rmcp's message for arguments that do not deserialize (see its tool router).
const DESERIALIZE_PREFIX: &str = "failed to deserialize parameters: ";

#[tool_handler(router = self.tools)]
impl ServerHandler for BayMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bay", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    /// Dispatches like rmcp's generated `call_tool`, but answers an unknown
    /// tool and arguments that do not parse with text, as Shipyard Neo does.
    async fn call_tool(&self, request: CallToolRequestParams, context: RequestContext<RoleServer>) -> Result<CallToolResponse, ErrorData> {
        if !self.tools.has_route(&request.name) {
            let text = format!("Unknown tool: {}", request.name);
            return Ok(CallToolResult::error(vec![ContentBlock::text(text)]).into());
        }
        let tcc = ToolCallContext::new(self, request, context);
        let mut response = self.tools.call(tcc).await?;
        if let CallToolResponse::Complete(result) = &mut response
            && result.is_error == Some(true)
            && let [ContentBlock::Text(t)] = result.content.as_mut_slice()
            && let Some(msg) = t.text.strip_prefix(DESERIALIZE_PREFIX)
        {
            t.text = format!("**Validation Error:** {msg}");
        }
        Ok(response)
    }
}
