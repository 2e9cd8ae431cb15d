//! A Lambda function binary run as Lambda runs it, against the emulated [`RuntimeApi`]: spawned
//! with the Lambda environment, timed from the outside, its memory read from `/proc`.
//!
//! [`Function`] is what every scenario uses: [`Function::start`] spawns the binary,
//! [`Function::wait_until_polling`] measures the cold start (spawn → first `next`) and
//! [`Function::invoke`] one invocation (handed out → answered). Whatever goes wrong (an init
//! error, an invocation error, the process exiting, a timeout) is an error that names it,
//! with the end of the function's log. The process is killed when the `Function` is dropped.

use crate::BenchResult;
use crate::runtime_api::{RuntimeApi, RuntimeEvent};
use axum::body::Bytes;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often the process is checked for having exited while waiting on it.
const EXIT_CHECK: Duration = Duration::from_millis(20);
/// How much of the function's log an error shows.
const LOG_TAIL_BYTES: u64 = 4_000;

/// How to run one function binary.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The binary (e.g. `target/release/sender-slack`).
    pub binary: PathBuf,
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub name: String,
    /// Variables of the function's own configuration (`HERALD_*`, `AWS_ENDPOINT_URL_*`, ...),
    /// added to the Lambda environment.
    pub env: Vec<(String, String)>,
    /// Where the function's stdout and stderr go.
    pub log: PathBuf,
    /// How long one invocation may take (the deadline handed out).
    pub timeout: Duration,
}

/// The process's memory as `/proc/<pid>/status` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_bytes: u64,
    /// `VmHWM`: the most it was ever resident (peak RSS).
    pub peak_rss_bytes: u64,
}

/// One invocation's outcome.
#[derive(Debug)]
pub struct Invoked {
    /// From the payload being handed out to the function's answer arriving.
    pub latency: Duration,
    /// The function's answer.
    pub body: Bytes,
}

/// A function binary running against its own emulated Runtime API.
#[derive(Debug)]
pub struct Function {
    api: RuntimeApi,
    child: Child,
    spawned_at: Instant,
    log: PathBuf,
    name: String,
    timeout: Duration,
}

impl Drop for Function {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Function {
    /// Starts an emulated Runtime API and spawns the binary against it. The environment is
    /// only Lambda's variables and `spec.env`: nothing of the caller's (no proxies, no AWS
    /// profile or credentials) reaches the function. `RUST_LOG` is passed on when set.
    pub async fn start(spec: &FunctionSpec) -> BenchResult<Function> {
        let api = RuntimeApi::start(&spec.name, spec.timeout).await?;
        let log = File::create(&spec.log)
            .map_err(|e| format!("cannot create the log {}: {e}", spec.log.display()))?;
        let mut command = Command::new(&spec.binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.address().to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.name),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("bench/[$LATEST]{}", std::process::id()),
            )
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // Empty shared config and credentials files: the SDK sees only the variables.
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        if let Ok(filter) = std::env::var("RUST_LOG") {
            command.env("RUST_LOG", filter);
        }
        command.envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let spawned_at = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.binary.display()))?;
        Ok(Function {
            api,
            child,
            spawned_at,
            log: spec.log.clone(),
            name: spec.name.clone(),
            timeout: spec.timeout,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the function's first `next`: the cold start, from spawning the process.
    pub async fn wait_until_polling(&mut self, timeout: Duration) -> BenchResult<Duration> {
        let deadline = Instant::now() + timeout;
        match self.wait_event(deadline, "its first poll").await? {
            RuntimeEvent::Polled { at } => Ok(at.duration_since(self.spawned_at)),
            other => Err(self.failure(&other, "before its first poll")),
        }
    }

    /// Hands `payload` to the function and waits for its answer.
    pub async fn invoke(&mut self, payload: &serde_json::Value) -> BenchResult<Invoked> {
        let request_id = self.api.invoke(payload)?;
        let deadline = Instant::now() + self.timeout;
        let mut handed_at = None;
        loop {
            let waiting_for = format!("the answer to {request_id}");
            match self.wait_event(deadline, &waiting_for).await? {
                RuntimeEvent::Polled { .. } => {}
                RuntimeEvent::Handed { request_id: id, at } if id == request_id => {
                    handed_at = Some(at);
                }
                RuntimeEvent::Response {
                    request_id: id,
                    body,
                    at,
                } if id == request_id => {
                    let handed_at = handed_at.ok_or("an answer came before its invocation")?;
                    return Ok(Invoked {
                        latency: at.duration_since(handed_at),
                        body,
                    });
                }
                other => return Err(self.failure(&other, &format!("invoking {request_id}"))),
            }
        }
    }

    /// The process's memory now.
    pub fn memory(&self) -> BenchResult<Memory> {
        memory_of(self.pid())
    }

    /// Kills the process (if it still runs) and reaps it.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// The next Runtime API event before `deadline`; an error if the process exits first.
    async fn wait_event(
        &mut self,
        deadline: Instant,
        waiting_for: &str,
    ) -> BenchResult<RuntimeEvent> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "{} did not get to {waiting_for} in time{}",
                    self.name,
                    self.log_tail()
                )
                .into());
            }
            let slice = EXIT_CHECK.min(deadline - now);
            if let Some(event) = self.api.next_event(slice).await {
                return Ok(event);
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(self.exited(status, waiting_for));
            }
        }
    }

    fn exited(&self, status: ExitStatus, waiting_for: &str) -> crate::BenchError {
        format!(
            "{} exited ({status}) while waiting for {waiting_for}{}",
            self.name,
            self.log_tail()
        )
        .into()
    }

    fn failure(&self, event: &RuntimeEvent, doing: &str) -> crate::BenchError {
        let what = match event {
            RuntimeEvent::InitError {
                error_type, body, ..
            } => format!(
                "reported an init error {error_type}: {}",
                String::from_utf8_lossy(body)
            ),
            RuntimeEvent::InvocationError {
                request_id,
                error_type,
                body,
                ..
            } => format!(
                "reported invocation {request_id} failed, {error_type}: {}",
                String::from_utf8_lossy(body)
            ),
            RuntimeEvent::Unexpected { method, path } => {
                format!("sent an unexpected request {method} {path}")
            }
            RuntimeEvent::Handed { request_id, .. } => {
                format!("was handed an invocation not asked for ({request_id})")
            }
            RuntimeEvent::Response { request_id, .. } => {
                format!("answered an invocation not asked for ({request_id})")
            }
            RuntimeEvent::Polled { .. } => "polled".to_owned(),
        };
        format!("{} {what} ({doing}){}", self.name, self.log_tail()).into()
    }

    /// The end of the function's log, for error messages.
    fn log_tail(&self) -> String {
        log_tail(&self.log).map_or_else(String::new, |tail| {
            format!("\n--- end of {} ---\n{tail}", self.log.display())
        })
    }
}

fn log_tail(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let length = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)))
        .ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let tail = String::from_utf8_lossy(&tail).trim().to_owned();
    (!tail.is_empty()).then_some(tail)
}

/// `VmRSS` and `VmHWM` of process `pid`.
pub fn memory_of(pid: u32) -> BenchResult<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    let field = |name: &str| -> BenchResult<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .ok_or_else(|| format!("/proc/{pid}/status has no {name}"))?;
        let kib: u64 = line
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .map_err(|_| format!("/proc/{pid}/status: unreadable {name}{line}"))?;
        Ok(kib * 1024)
    };
    Ok(Memory {
        rss_bytes: field("VmRSS:")?,
        peak_rss_bytes: field("VmHWM:")?,
    })
}
