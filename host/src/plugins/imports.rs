//! The host imports every WIT version shares (`types`, `http`, `log`).
//!
//! Each version's bindings generate their own traits and types for these
//! interfaces, identical in shape. [`host_imports!`] implements them once,
//! invoked inside each version module (where `self::bay::plugin` names that
//! version's generated interfaces); the work itself is in
//! [`super::outbound`] and [`super::PluginState`].

macro_rules! host_imports {
    () => {
        impl self::bay::plugin::types::Host for $crate::plugins::PluginState {}

        impl self::bay::plugin::http::HostBody for $crate::plugins::PluginState {
            async fn size_hint(&mut self, body: ::wasmtime::component::Resource<$crate::plugins::body::HostBody>) -> ::wasmtime::Result<Option<u64>> {
                Ok(self.table.get(&body)?.size())
            }

            async fn drop(&mut self, body: ::wasmtime::component::Resource<$crate::plugins::body::HostBody>) -> ::wasmtime::Result<()> {
                self.table.delete(body)?;
                Ok(())
            }
        }

        /// A WIT `method` as reqwest's.
        #[allow(dead_code)] // 0.1 has no live operations
        fn http_method(m: self::bay::plugin::http::Method) -> reqwest::Method {
            use self::bay::plugin::http::Method;
            match m {
                Method::Get => reqwest::Method::GET,
                Method::Head => reqwest::Method::HEAD,
                Method::Post => reqwest::Method::POST,
                Method::Put => reqwest::Method::PUT,
                Method::Patch => reqwest::Method::PATCH,
                Method::Delete => reqwest::Method::DELETE,
            }
        }

        fn out_request(
            state: &mut $crate::plugins::PluginState,
            req: self::bay::plugin::http::Request,
        ) -> ::wasmtime::Result<$crate::plugins::outbound::OutRequest> {
            use self::bay::plugin::http::{PartValue, RequestBody};
            use $crate::plugins::outbound::{OutBody, OutPart, OutPartValue, OutRequest};
            let method = http_method(req.method);
            let body = match req.body {
                RequestBody::Empty => OutBody::Empty,
                RequestBody::Bytes(b) => OutBody::Bytes(b),
                RequestBody::Json(j) => OutBody::Json(j),
                RequestBody::Stream(b) => OutBody::Stream(state.take_body(b)?),
                RequestBody::Multipart(parts) => {
                    let mut out = Vec::with_capacity(parts.len());
                    for p in parts {
                        let value = match p.value {
                            PartValue::Text(t) => OutPartValue::Text(t),
                            PartValue::Bytes(b) => OutPartValue::Bytes(b),
                            PartValue::Stream(b) => OutPartValue::Stream(state.take_body(b)?),
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
                timeout: req.timeout_ms.map(|ms| ::std::time::Duration::from_millis(ms.into())),
            })
        }

        fn http_error(e: $crate::plugins::outbound::OutError) -> self::bay::plugin::http::HttpError {
            use self::bay::plugin::http::HttpError;
            use $crate::plugins::outbound::OutError;
            match e {
                OutError::Denied(m) => HttpError::Denied(m),
                OutError::Unreachable(m) | OutError::ConnectFailed(m) => HttpError::Unreachable(m),
                OutError::Timeout => HttpError::Timeout,
                OutError::InvalidRequest(m) => HttpError::InvalidRequest(m),
                OutError::TooLarge(n) => HttpError::TooLarge(n),
            }
        }

        impl self::bay::plugin::http::Host for $crate::plugins::PluginState {
            async fn send(
                &mut self,
                req: self::bay::plugin::http::Request,
            ) -> ::wasmtime::Result<Result<self::bay::plugin::http::Response, self::bay::plugin::http::HttpError>> {
                let out = out_request(self, req)?;
                let target = self.target.clone();
                let result = target.send(out).await;
                self.resume_guest();
                self.observe(&result);
                Ok(result.map(|(status, headers, body)| self::bay::plugin::http::Response { status, headers, body }).map_err(http_error))
            }

            async fn send_streamed(
                &mut self,
                req: self::bay::plugin::http::Request,
            ) -> ::wasmtime::Result<Result<self::bay::plugin::http::StreamedResponse, self::bay::plugin::http::HttpError>> {
                let out = out_request(self, req)?;
                let target = self.target.clone();
                let result = target.send_streamed(out).await;
                self.resume_guest();
                self.observe(&result);
                match result {
                    Ok((status, headers, body)) => {
                        let body = self.table.push(body)?;
                        Ok(Ok(self::bay::plugin::http::StreamedResponse { status, headers, body }))
                    }
                    Err(e) => Ok(Err(http_error(e))),
                }
            }
        }

        impl self::bay::plugin::log::Host for $crate::plugins::PluginState {
            async fn log(&mut self, level: self::bay::plugin::log::Level, message: String) -> ::wasmtime::Result<()> {
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
    };
}

pub(crate) use host_imports;
