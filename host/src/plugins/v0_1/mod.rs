//! Host side of the `bay:plugin@0.1.x` contract (`wit/bay-plugin-0.1`).
//!
//! One module per supported WIT version: it generates the bindings, links the
//! host imports (`http`, `log`), and converts between the generated types and
//! the version-independent ones of [`crate::adapter`].

pub mod driver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker, Resource};

use super::PluginState;
use super::body::HostBody;
use super::outbound::{OutBody, OutError, OutPart, OutPartValue, OutRequest, OutboundTarget};
use crate::adapter::{self as host, AdapterError, CapabilityCall, CapabilityOutcome};

wasmtime::component::bindgen!({
    world: "runtime-adapter",
    path: "../wit/bay-plugin-0.1",
    imports: { default: async | trappable },
    exports: { default: async },
    with: { "bay:plugin/http.body": crate::plugins::body::HostBody },
});

use self::bay::plugin::http::{self as wit_http};
use exports::bay::plugin::adapter as wit;

/// The WIT version this module implements.
pub const VERSION: super::manifest::WitVersion = super::manifest::WitVersion { major: 0, minor: 1, patch: 0 };

/// Adds the host imports of this version to a linker.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    RuntimeAdapter::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

impl self::bay::plugin::types::Host for PluginState {}

impl wit_http::HostBody for PluginState {
    async fn size_hint(&mut self, body: Resource<HostBody>) -> wasmtime::Result<Option<u64>> {
        Ok(self.table.get(&body)?.size())
    }

    async fn drop(&mut self, body: Resource<HostBody>) -> wasmtime::Result<()> {
        self.table.delete(body)?;
        Ok(())
    }
}

impl PluginState {
    fn take_body(&mut self, body: Resource<HostBody>) -> wasmtime::Result<HostBody> {
        Ok(self.table.delete(body)?)
    }

    fn out_request(&mut self, req: wit_http::Request) -> wasmtime::Result<OutRequest> {
        use wit_http::{Method, PartValue, RequestBody};
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let body = match req.body {
            RequestBody::Empty => OutBody::Empty,
            RequestBody::Bytes(b) => OutBody::Bytes(b),
            RequestBody::Json(j) => OutBody::Json(j),
            RequestBody::Stream(b) => OutBody::Stream(self.take_body(b)?),
            RequestBody::Multipart(parts) => {
                let mut out = Vec::with_capacity(parts.len());
                for p in parts {
                    let value = match p.value {
                        PartValue::Text(t) => OutPartValue::Text(t),
                        PartValue::Bytes(b) => OutPartValue::Bytes(b),
                        PartValue::Stream(b) => OutPartValue::Stream(self.take_body(b)?),
                    };
                    out.push(OutPart { name: p.name, filename: p.filename, content_type: p.content_type, value });
                }
                OutBody::Multipart(out)
            }
        };
        Ok(OutRequest {
            method,
            url: req.url,
            query: req.query,
            headers: req.headers,
            body,
            timeout: req.timeout_ms.map(|ms| Duration::from_millis(ms.into())),
        })
    }
}

fn wit_http_error(e: OutError) -> wit_http::HttpError {
    match e {
        OutError::Denied(m) => wit_http::HttpError::Denied(m),
        OutError::Unreachable(m) | OutError::ConnectFailed(m) => wit_http::HttpError::Unreachable(m),
        OutError::Timeout => wit_http::HttpError::Timeout,
        OutError::InvalidRequest(m) => wit_http::HttpError::InvalidRequest(m),
        OutError::TooLarge(n) => wit_http::HttpError::TooLarge(n),
    }
}

impl wit_http::Host for PluginState {
    async fn send(&mut self, req: wit_http::Request) -> wasmtime::Result<Result<wit_http::Response, wit_http::HttpError>> {
        let out = self.out_request(req)?;
        let target = self.target.clone();
        let result = target.send(out).await;
        self.resume_guest();
        self.observe(&result);
        Ok(result.map(|(status, headers, body)| wit_http::Response { status, headers, body }).map_err(wit_http_error))
    }

    async fn send_streamed(&mut self, req: wit_http::Request) -> wasmtime::Result<Result<wit_http::StreamedResponse, wit_http::HttpError>> {
        let out = self.out_request(req)?;
        let target = self.target.clone();
        let result = target.send_streamed(out).await;
        self.resume_guest();
        self.observe(&result);
        match result {
            Ok((status, headers, body)) => {
                let body = self.table.push(body)?;
                Ok(Ok(wit_http::StreamedResponse { status, headers, body }))
            }
            Err(e) => Ok(Err(wit_http_error(e))),
        }
    }
}

impl self::bay::plugin::log::Host for PluginState {
    async fn log(&mut self, level: self::bay::plugin::log::Level, message: String) -> wasmtime::Result<()> {
        use self::bay::plugin::log::Level;
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}

/// A loaded runtime-adapter plugin of this WIT version.
pub struct AdapterPlugin {
    name: String,
    version: String,
    info: host::AdapterInfo,
    pre: RuntimeAdapterPre<PluginState>,
    shared: super::Shared,
    limits: super::Limits,
    allow: Arc<Vec<String>>,
}

impl AdapterPlugin {
    /// Links `component` against this version's imports and checks its exports.
    pub(crate) async fn load(
        manifest: &super::manifest::Manifest,
        component: &Component,
        shared: &super::Shared,
        limits: super::Limits,
    ) -> anyhow::Result<AdapterPlugin> {
        let instance_pre =
            shared.linker_v0_1.instantiate_pre(component).map_err(|e| anyhow::anyhow!("the component does not fit the host's imports: {e:#}"))?;
        let pre = RuntimeAdapterPre::new(instance_pre)
            .map_err(|e| anyhow::anyhow!("the component does not export the runtime-adapter world of bay:plugin@0.1: {e:#}"))?;
        let mut plugin = AdapterPlugin {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            info: host::AdapterInfo { runtime_type: String::new(), version: String::new(), capabilities: vec![] },
            pre,
            shared: shared.clone(),
            limits,
            allow: Arc::new(manifest.outbound.allow.clone()),
        };
        let (mut store, bindings, _permit) = plugin.instantiate(None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let info = tokio::time::timeout(Duration::from_secs(10), bindings.bay_plugin_adapter().call_describe(&mut store))
            .await
            .map_err(|_| anyhow::anyhow!("describe() did not return within 10 s"))?
            .map_err(|e| anyhow::anyhow!("describe() failed: {e:#}"))?;
        plugin.info = host::AdapterInfo {
            runtime_type: info.runtime_type,
            version: info.version,
            capabilities: info.capabilities.into_iter().map(|c| host::Capability { name: c.name, operations: c.operations }).collect(),
        };
        Ok(plugin)
    }

    async fn instantiate(&self, endpoint: Option<&str>) -> Result<(Store<PluginState>, RuntimeAdapter, OwnedSemaphorePermit), AdapterError> {
        // Calls beyond the pool's capacity wait for a slot instead of failing.
        let permit = self.shared.slots.clone().acquire_owned().await.map_err(|_| AdapterError::Plugin("plugin host is shutting down".into()))?;
        let target = OutboundTarget::new(endpoint, self.allow.clone(), self.shared.client.clone(), self.limits.max_response)
            .map_err(AdapterError::InvalidRequest)?;
        let mut store = super::new_store(&self.shared.engine, &self.name, target, self.limits);
        let bindings = self.pre.instantiate_async(&mut store).await.map_err(|e| self.trap(e))?;
        Ok((store, bindings, permit))
    }

    fn trap(&self, e: wasmtime::Error) -> AdapterError {
        AdapterError::Plugin(format!("runtime adapter plugin {} {} failed: {e:#}", self.name, self.version))
    }

    /// Runs one export under the call's deadline; a failure is described
    /// with what the store saw (memory limit hit, trap kind, CPU budget).
    async fn run<T>(
        &self,
        deadline: Duration,
        store: &mut Store<PluginState>,
        f: impl AsyncFnOnce(&mut Store<PluginState>) -> wasmtime::Result<T>,
    ) -> Result<T, AdapterError> {
        let outcome = tokio::time::timeout(deadline, f(&mut *store)).await;
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(AdapterError::Plugin(format!(
                "runtime adapter plugin {} {} failed: {}",
                self.name,
                self.version,
                super::describe_failure(&self.name, &e, store.data())
            ))),
            Err(_) => Err(AdapterError::Timeout(format!("runtime adapter plugin {} did not finish within {}s", self.name, deadline.as_secs()))),
        }
    }
}

#[async_trait]
impl host::RuntimeAdapter for AdapterPlugin {
    fn info(&self) -> &host::AdapterInfo {
        &self.info
    }

    fn plugin(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    async fn health(&self, endpoint: &str) -> Result<host::HealthStatus, AdapterError> {
        let (mut store, b, _permit) = self.instantiate(Some(endpoint)).await?;
        let r = self.run(Duration::from_secs(30), &mut store, async |s| b.bay_plugin_adapter().call_health(s).await).await?;
        r.map(|h| host::HealthStatus { healthy: h.healthy, detail: h.detail }).map_err(from_wit_error)
    }

    async fn meta(&self, endpoint: &str) -> Result<host::RuntimeMeta, AdapterError> {
        let (mut store, b, _permit) = self.instantiate(Some(endpoint)).await?;
        let r = self.run(Duration::from_secs(30), &mut store, async |s| b.bay_plugin_adapter().call_meta(s).await).await?;
        r.map(|m| host::RuntimeMeta { name: m.name, version: m.version, api_version: m.api_version, capabilities: m.capabilities, raw: m.raw })
            .map_err(from_wit_error)
    }

    async fn invoke(&self, endpoint: &str, call: CapabilityCall) -> Result<CapabilityOutcome, AdapterError> {
        let started = Instant::now();
        let deadline = call.deadline();
        let (mut store, b, _permit) = self.instantiate(Some(endpoint)).await?;
        let request = to_wit_call(&mut store, call).map_err(|e| self.trap(e))?;
        let r = self.run(deadline, &mut store, async |s| b.bay_plugin_adapter().call_invoke(s, &request).await).await?;
        let outcome = match r {
            Ok(resp) => from_wit_response(&mut store, resp).map_err(|e| self.trap(e)),
            // Nothing reached the runtime: the caller may safely retry elsewhere.
            Err(wit::AdapterError::Unreachable(m)) if store.data().never_connected() => Err(AdapterError::NotConnected(m)),
            Err(e) => Err(from_wit_error(e)),
        };
        tracing::trace!(plugin = %self.name, elapsed_us = started.elapsed().as_micros() as u64, "plugin call");
        outcome
    }
}

fn from_wit_error(e: wit::AdapterError) -> AdapterError {
    use self::bay::plugin::types::AdapterError as E;
    match e {
        E::Unsupported(m) => AdapterError::Unsupported(m),
        E::Runtime(f) => AdapterError::Runtime { status: f.status, message: f.message, body: f.body },
        E::Unreachable(m) => AdapterError::Unreachable(m),
        E::Timeout(m) => AdapterError::Timeout(m),
        E::NotFound(m) => AdapterError::NotFound(m),
        E::InvalidRequest(m) => AdapterError::InvalidRequest(m),
        E::BadResponse(m) => AdapterError::BadResponse(m),
    }
}

fn to_wit_call(store: &mut Store<PluginState>, call: CapabilityCall) -> wasmtime::Result<wit::CapabilityRequest> {
    use wit::CapabilityRequest as R;
    Ok(match call {
        CapabilityCall::PythonExec { code, timeout_s } => R::PythonExec(wit::PythonExecRequest { code, timeout_s }),
        CapabilityCall::ShellExec { command, timeout_s, cwd } => R::ShellExec(wit::ShellExecRequest { command, timeout_s, cwd }),
        CapabilityCall::FileRead { path } => R::FileRead(path),
        CapabilityCall::FileWrite { path, content } => R::FileWrite(wit::FileWriteRequest { path, content }),
        CapabilityCall::FileList { path } => R::FileList(path),
        CapabilityCall::FileDelete { path } => R::FileDelete(path),
        CapabilityCall::FileUpload { path, content } => {
            let content = store.data_mut().table.push(content)?;
            R::FileUpload(wit::FileUploadRequest { path, content })
        }
        CapabilityCall::FileDownload { path } => R::FileDownload(path),
        CapabilityCall::BrowserExec { cmd, timeout_s } => R::BrowserExec(wit::BrowserExecRequest { cmd, timeout_s }),
        CapabilityCall::BrowserBatch { commands, timeout_s, stop_on_error } => {
            R::BrowserBatch(wit::BrowserBatchRequest { commands, timeout_s, stop_on_error })
        }
        CapabilityCall::Custom { capability, operation, payload } => R::Custom(wit::CustomRequest { capability, operation, payload }),
    })
}

fn from_wit_response(store: &mut Store<PluginState>, resp: wit::CapabilityResponse) -> wasmtime::Result<CapabilityOutcome> {
    use wit::CapabilityResponse as R;
    Ok(match resp {
        R::PythonExec(r) => CapabilityOutcome::PythonExec(host::PythonExecResult {
            success: r.success,
            execution_count: r.execution_count,
            text: r.text,
            images: r.images.into_iter().map(|i| (i.mime_type, i.data_base64)).collect(),
            error: r.error,
        }),
        R::ShellExec(r) => CapabilityOutcome::ShellExec(host::ShellExecResult {
            success: r.success,
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
            error: r.error,
        }),
        R::FileContent(c) => CapabilityOutcome::FileContent(c),
        R::Done => CapabilityOutcome::Done,
        R::FileList(entries) => CapabilityOutcome::FileList(
            entries
                .into_iter()
                .map(|e| host::FileEntry {
                    name: e.name,
                    path: e.path,
                    is_file: e.is_file,
                    is_dir: e.is_dir,
                    size: e.size,
                    modified_time: e.modified_time,
                })
                .collect(),
        ),
        R::Uploaded(u) => CapabilityOutcome::Uploaded { path: u.path, size: u.size },
        R::Downloaded(d) => {
            let content = store.data_mut().table.delete(d.content)?;
            CapabilityOutcome::Downloaded { content, size: d.size }
        }
        R::BrowserExec(r) => CapabilityOutcome::BrowserExec(host::BrowserExecResult { stdout: r.stdout, stderr: r.stderr, exit_code: r.exit_code }),
        R::BrowserBatch(r) => CapabilityOutcome::BrowserBatch(host::BrowserBatchResult {
            results: r
                .results
                .into_iter()
                .map(|s| host::BrowserStep {
                    cmd: s.cmd,
                    stdout: s.stdout,
                    stderr: s.stderr,
                    exit_code: s.exit_code,
                    step_index: s.step_index,
                    duration_ms: s.duration_ms,
                })
                .collect(),
            total_steps: r.total_steps,
            completed_steps: r.completed_steps,
            success: r.success,
            duration_ms: r.duration_ms,
        }),
        R::Custom(json) => CapabilityOutcome::Custom(json),
    })
}
