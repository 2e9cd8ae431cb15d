//! The `herald-local` binary as the tests run it: started on a free loopback port with its
//! output kept, and its `token` subcommand. Each test binary uses part of this.
#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_herald-local");

/// How long the binary may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The running binary, and everything it wrote so far. Killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Everything written to stdout and stderr so far.
    pub fn output(&self) -> String {
        format!("{}{}", lock(&self.stdout), lock(&self.stderr))
    }
}

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads `stream` to its end into `into`, as it comes.
fn collect(mut stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => lock(&into).push_str(&String::from_utf8_lossy(&buffer[..n])),
            }
        }
    });
}

/// The binary with `HERALD_JWT_SECRET` unset (the data directory's own secret) and Slack at a
/// closed loopback port (nothing leaves this machine), then `env` on top.
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("HERALD_JWT_SECRET")
        .env("SLACK_API_URL", "http://127.0.0.1:9/api");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Starts `herald-local --listen 127.0.0.1:0 --data-dir DATA_DIR ARGS...` with `env` (see
/// [`command`]) and waits for its "listening" line.
pub fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = command(env)
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    if let Some(out) = child.stdout.take() {
        collect(out, Arc::clone(&stdout));
    }
    if let Some(err) = child.stderr.take() {
        collect(err, Arc::clone(&stderr));
    }
    let deadline = Instant::now() + START_TIMEOUT;
    let base = loop {
        let text = lock(&stderr).clone();
        if let Some(rest) = text.split("herald-local listening on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("herald-local stopped before listening ({status}): {text}");
        }
        assert!(
            Instant::now() < deadline,
            "herald-local did not start listening: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    Server {
        child,
        base,
        stdout,
        stderr,
    }
}

/// `herald-local token --sub SUB --role ROLE --data-dir DATA_DIR` with `env`, as it ran.
pub fn token_output(data_dir: &Path, sub: &str, role: &str, env: &[(&str, &str)]) -> Output {
    command(env)
        .args(["token", "--sub", sub, "--role", role, "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the token command: {e}"))
}

/// A token minted by the `token` subcommand (which must succeed).
pub fn token(data_dir: &Path, sub: &str, role: &str, env: &[(&str, &str)]) -> String {
    let output = token_output(data_dir, sub, role, env);
    assert!(
        output.status.success(),
        "token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
