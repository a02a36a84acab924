//! Conversions between Bay's version-neutral adapter types
//! (`crate::adapter`) and a WIT version's generated ones.
//!
//! The versions differ only in how file contents travel; [`adapter_conversions!`]
//! writes the shared arms once and takes the two that differ as functions,
//! invoked inside a version module where `wit` names its generated
//! `exports::bay::plugin::adapter` and `self::bay::plugin::types` its types.

macro_rules! adapter_conversions {
    (file_write: $file_write:expr, file_content: $file_content:expr $(,)?) => {
        fn from_wit_error(e: self::bay::plugin::types::AdapterError) -> $crate::adapter::AdapterError {
            use self::bay::plugin::types::AdapterError as E;
            use $crate::adapter::AdapterError;
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

        fn adapter_info(info: self::bay::plugin::types::AdapterInfo) -> $crate::adapter::AdapterInfo {
            $crate::adapter::AdapterInfo {
                runtime_type: info.runtime_type,
                version: info.version,
                capabilities: info.capabilities.into_iter().map(|c| $crate::adapter::Capability { name: c.name, operations: c.operations }).collect(),
            }
        }

        fn runtime_meta(m: wit::RuntimeMeta) -> $crate::adapter::RuntimeMeta {
            $crate::adapter::RuntimeMeta { name: m.name, version: m.version, api_version: m.api_version, capabilities: m.capabilities, raw: m.raw }
        }

        fn to_wit_call(
            store: &mut ::wasmtime::Store<$crate::plugins::PluginState>,
            call: $crate::adapter::CapabilityCall,
        ) -> ::wasmtime::Result<wit::CapabilityRequest> {
            use wit::CapabilityRequest as R;
            use $crate::adapter::CapabilityCall;
            Ok(match call {
                CapabilityCall::PythonExec { code, timeout_s } => R::PythonExec(wit::PythonExecRequest { code, timeout_s }),
                CapabilityCall::ShellExec { command, timeout_s, cwd } => R::ShellExec(wit::ShellExecRequest { command, timeout_s, cwd }),
                CapabilityCall::FileRead { path } => R::FileRead(path),
                CapabilityCall::FileWrite { path, content } => R::FileWrite(($file_write)(store, path, content)?),
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

        fn from_wit_response(
            store: &mut ::wasmtime::Store<$crate::plugins::PluginState>,
            resp: wit::CapabilityResponse,
        ) -> ::wasmtime::Result<$crate::adapter::CapabilityOutcome> {
            use wit::CapabilityResponse as R;
            use $crate::adapter::{self as host, CapabilityOutcome};
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
                R::FileContent(c) => ($file_content)(store, c)?,
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
                R::BrowserExec(r) => {
                    CapabilityOutcome::BrowserExec(host::BrowserExecResult { stdout: r.stdout, stderr: r.stderr, exit_code: r.exit_code })
                }
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

        impl $crate::plugins::adapter::AdapterWorld for Adapter {
            type Pre = RuntimeAdapterPre<$crate::plugins::PluginState>;
            const PACKAGE: &'static str = PACKAGE;

            fn prepare(pre: ::wasmtime::component::InstancePre<$crate::plugins::PluginState>) -> ::wasmtime::Result<Self::Pre> {
                RuntimeAdapterPre::new(pre)
            }

            async fn instantiate(pre: &Self::Pre, store: &mut ::wasmtime::Store<$crate::plugins::PluginState>) -> ::wasmtime::Result<Self> {
                Ok(Adapter(pre.instantiate_async(store).await?))
            }

            async fn describe(
                &self,
                store: &mut ::wasmtime::Store<$crate::plugins::PluginState>,
            ) -> ::wasmtime::Result<$crate::adapter::AdapterInfo> {
                Ok(adapter_info(self.0.bay_plugin_adapter().call_describe(store).await?))
            }

            async fn health(
                &self,
                store: &mut ::wasmtime::Store<$crate::plugins::PluginState>,
            ) -> ::wasmtime::Result<Result<$crate::adapter::HealthStatus, $crate::adapter::AdapterError>> {
                let r = self.0.bay_plugin_adapter().call_health(store).await?;
                Ok(r.map(|h| $crate::adapter::HealthStatus { healthy: h.healthy, detail: h.detail }).map_err(from_wit_error))
            }

            async fn meta(
                &self,
                store: &mut ::wasmtime::Store<$crate::plugins::PluginState>,
            ) -> ::wasmtime::Result<Result<$crate::adapter::RuntimeMeta, $crate::adapter::AdapterError>> {
                let r = self.0.bay_plugin_adapter().call_meta(store).await?;
                Ok(r.map(runtime_meta).map_err(from_wit_error))
            }

            async fn invoke(
                &self,
                store: &mut ::wasmtime::Store<$crate::plugins::PluginState>,
                call: $crate::adapter::CapabilityCall,
            ) -> ::wasmtime::Result<Result<$crate::adapter::CapabilityOutcome, $crate::adapter::AdapterError>> {
                let call = match prepare_call(call).await {
                    Ok(call) => call,
                    Err(e) => return Ok(Err(e)),
                };
                let request = to_wit_call(store, call)?;
                match self.0.bay_plugin_adapter().call_invoke(&mut *store, &request).await? {
                    Ok(resp) => Ok(Ok(from_wit_response(store, resp)?)),
                    Err(e) => Ok(Err(from_wit_error(e))),
                }
            }

            async fn live(
                &self,
                store: &mut ::wasmtime::Store<$crate::plugins::PluginState>,
                op: $crate::adapter::LiveOp,
            ) -> ::wasmtime::Result<Result<$crate::adapter::LiveRequest, $crate::adapter::AdapterError>> {
                live_call(&self.0, store, op).await
            }
        }
    };
}

pub(crate) use adapter_conversions;
