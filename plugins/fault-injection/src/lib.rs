//! A runtime adapter that misbehaves on request, to prove that a broken
//! plugin only fails its own call. Python exec of:
//! - `trap`: panics (a WebAssembly trap);
//! - `loop`: spins forever (stopped by the guest CPU budget);
//! - `memory`: allocates without end (stopped by the memory limit);
//! - `garbage`: answers a python call with a file listing (a contract breach);
//! - anything else: answers `ok`.
//!
//! It implements the generated export trait directly (not the SDK trait) so
//! it can return a wrong response variant, and it stays on `bay:plugin@0.1`
//! (`wit/bay-plugin-0.1`, its own bindings: the SDK is on 0.2), so the tests
//! that load it also prove that 0.1 runtime adapters keep loading.

wit_bindgen::generate!({
    world: "runtime-adapter",
    path: "../../wit/bay-plugin-0.1",
});

use bay::plugin::types::{AdapterError, AdapterInfo, Capability};
use exports::bay::plugin::adapter::{CapabilityRequest, CapabilityResponse, Guest, HealthStatus, PythonExecResult, RuntimeMeta};

struct Faulty;

impl Guest for Faulty {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            runtime_type: "faulty".into(),
            version: "0.1.0".into(),
            capabilities: vec![Capability { name: "python".into(), operations: vec!["exec".into()] }],
        }
    }

    fn health() -> Result<HealthStatus, AdapterError> {
        Ok(HealthStatus { healthy: true, detail: None })
    }

    fn meta() -> Result<RuntimeMeta, AdapterError> {
        Ok(RuntimeMeta {
            name: "faulty".into(),
            version: "0.1.0".into(),
            api_version: "v1".into(),
            capabilities: vec!["python".into()],
            raw: "{}".into(),
        })
    }

    fn invoke(req: CapabilityRequest) -> Result<CapabilityResponse, AdapterError> {
        let CapabilityRequest::PythonExec(exec) = req else {
            return Err(AdapterError::Unsupported("only python exec".into()));
        };
        match exec.code.trim() {
            "trap" => panic!("injected fault"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hog);
                }
            }
            "garbage" => Ok(CapabilityResponse::FileList(vec![])),
            _ => Ok(CapabilityResponse::PythonExec(PythonExecResult {
                success: true,
                execution_count: Some(1),
                text: "ok".into(),
                images: vec![],
                error: None,
            })),
        }
    }
}

export!(Faulty);
