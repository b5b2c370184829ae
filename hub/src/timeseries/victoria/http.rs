//! The one HTTP GET every query makes: on a runtime of its own (the trait is synchronous and
//! its callers are blocking threads), under a timeout, with the body capped.

use super::super::TsError;
use super::config::VictoriaConfig;
use std::time::Duration;

/// Why a request produced no body.
#[derive(Debug)]
pub enum Fetch {
    /// The body exceeded `response_bytes_max`: ask for a smaller window.
    TooLarge,
    Failed(TsError),
}

/// A client for one server. The base URL carries no credentials: they are split off into
/// `basic_auth`, and `describe` (scheme, host, port, path) is what errors name.
pub struct VictoriaHttp {
    client: reqwest::Client,
    base: reqwest::Url,
    basic_auth: Option<(String, Option<String>)>,
    describe: String,
    response_bytes_max: u64,
    /// Always Some until drop, which shuts it down without waiting (dropping a runtime
    /// blocks, which panics inside an async context, e.g. a hub's state dropped at shutdown).
    rt: Option<tokio::runtime::Runtime>,
}

impl VictoriaHttp {
    pub fn new(cfg: &VictoriaConfig) -> Result<VictoriaHttp, TsError> {
        cfg.validate()?;
        let mut base = reqwest::Url::parse(&cfg.url).map_err(|e| {
            TsError::Store(format!(
                "victoria.url is not a URL ({e}); e.g. http://127.0.0.1:8428"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(TsError::Store(
                "victoria.url must be http(s)://host[:port][/path], e.g. http://127.0.0.1:8428"
                    .into(),
            ));
        }
        let basic_auth = (!base.username().is_empty()).then(|| {
            (
                base.username().to_string(),
                base.password().map(str::to_string),
            )
        });
        // Both calls succeed on an http(s) URL with a host.
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let describe = format!(
            "victoria-metrics at {}",
            base.as_str().trim_end_matches('/')
        );
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.request_timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.request_timeout_ms))
            .build()
            .map_err(|e| TsError::Store(format!("{describe}: cannot build a client: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("victoria-io")
            .enable_all()
            .build()
            .map_err(|e| TsError::Store(format!("{describe}: cannot start its runtime: {e}")))?;
        Ok(VictoriaHttp {
            client,
            base,
            basic_auth,
            describe,
            response_bytes_max: cfg.response_bytes_max,
            rt: Some(rt),
        })
    }

    /// "victoria-metrics at http://host:port": the server, without credentials.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// GET `path` (e.g. `api/v1/export`, relative to the configured URL) with `query`.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Vec<u8>, Fetch> {
        let mut url = self.base.clone();
        let joined = format!("{}/{path}", url.path().trim_end_matches('/'));
        url.set_path(&joined);
        let mut req = self.client.get(url).query(query);
        if let Some((user, pass)) = &self.basic_auth {
            req = req.basic_auth(user, pass.as_ref());
        }
        let max = self.response_bytes_max;
        let describe = self.describe.clone();
        // The request runs on the runtime's worker (its reactor); this thread only waits.
        let Some(rt) = &self.rt else {
            return Err(Fetch::Failed(TsError::Store(format!(
                "{}: query after shutdown",
                self.describe
            ))));
        };
        let task = rt.spawn(async move { read_capped(req, max, &describe).await });
        match futures::executor::block_on(task) {
            Ok(out) => out,
            Err(e) => Err(Fetch::Failed(TsError::Store(format!(
                "{}: request task failed: {e}",
                self.describe
            )))),
        }
    }
}

impl Drop for VictoriaHttp {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Sends `req` and reads its body, refusing one above `max` bytes as soon as it is seen.
async fn read_capped(
    req: reqwest::RequestBuilder,
    max: u64,
    describe: &str,
) -> Result<Vec<u8>, Fetch> {
    // A reqwest error's text names the URL, and the URL carries no credentials.
    let unavailable =
        |e: reqwest::Error| Fetch::Failed(TsError::Unavailable(format!("{describe}: {e}")));
    let mut resp = req.send().await.map_err(unavailable)?;
    let status = resp.status();
    if !status.is_success() {
        // The first chunk of the server's explanation is enough for the message.
        let first = resp.chunk().await.ok().flatten().unwrap_or_default();
        let text = String::from_utf8_lossy(&first[..first.len().min(300)]).into_owned();
        let err = format!("{describe}: HTTP {status}: {}", text.trim());
        return Err(Fetch::Failed(if status.is_server_error() {
            TsError::Unavailable(err)
        } else {
            TsError::Store(err)
        }));
    }
    if resp.content_length().is_some_and(|n| n > max) {
        return Err(Fetch::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(unavailable)? {
        if body.len() as u64 + chunk.len() as u64 > max {
            return Err(Fetch::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn it_is_called_from_spawn_blocking_and_dropped_inside_a_runtime() {
        // Nothing listens on port 9 of loopback: an error, quickly, then a drop in async code.
        let mut cfg = VictoriaConfig::new("http://u:pw@127.0.0.1:9");
        cfg.request_timeout_ms = 500;
        let http = VictoriaHttp::new(&cfg).unwrap();
        let (http, out) = tokio::task::spawn_blocking(move || {
            let out = http.get("api/v1/export", &[]);
            (http, out)
        })
        .await
        .unwrap();
        match out {
            Err(Fetch::Failed(TsError::Unavailable(e))) => {
                assert!(e.contains("victoria-metrics at http://127.0.0.1:9"), "{e}");
                assert!(!e.contains("pw"), "{e}");
            }
            Err(Fetch::Failed(e)) => panic!("{e}"),
            Err(Fetch::TooLarge) => panic!("too large"),
            Ok(body) => panic!("{} bytes from nothing", body.len()),
        }
        drop(http);
    }
}
