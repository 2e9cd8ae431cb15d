//! `cold-start`: how long a function binary takes from spawn to its first `next`, and how
//! much memory it holds then, for any of Herald's functions.
//!
//! Every function reads its configuration at start-up and contacts AWS only when invoked, so
//! the configuration here is complete but points nowhere (a closed loopback port): nothing
//! leaves the process before the first `next`, and no emulator is needed.

use crate::BenchResult;
use crate::function::{Function, FunctionSpec, Memory};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a function may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A loopback address nothing listens on (the discard port).
const NOWHERE: &str = "http://127.0.0.1:9";

/// One binary's cold starts.
#[derive(Debug, Clone)]
pub struct ColdStarts {
    pub function: String,
    pub binary_bytes: u64,
    /// Spawn → first `next`, one per run.
    pub starts: Vec<Duration>,
    /// Memory at the first `next` of the run with the largest peak.
    pub memory: Memory,
}

/// Starts `binary` `runs` times, each a fresh process, logging into `log_dir`.
pub async fn measure(binary: &Path, runs: usize, log_dir: &Path) -> BenchResult<ColdStarts> {
    let binary_bytes = std::fs::metadata(binary)
        .map_err(|e| format!("{}: {e}", binary.display()))?
        .len();
    let function = binary.file_name().map_or_else(
        || "function".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let spec = FunctionSpec {
        binary: binary.to_path_buf(),
        name: function.clone(),
        env: configuration_pointing_nowhere(&function),
        log: log_dir.join(format!("{function}.cold-start.log")),
        timeout: START_TIMEOUT,
    };
    let mut starts = Vec::with_capacity(runs);
    let mut memory: Option<Memory> = None;
    for _ in 0..runs {
        let mut running = Function::start(&spec).await?;
        starts.push(running.wait_until_polling(START_TIMEOUT).await?);
        let now = running.memory()?;
        running.stop();
        if memory.is_none_or(|m| now.peak_rss_bytes > m.peak_rss_bytes) {
            memory = Some(now);
        }
    }
    Ok(ColdStarts {
        function,
        binary_bytes,
        starts,
        memory: memory.ok_or("no runs")?,
    })
}

/// Every variable any of Herald's functions requires, pointing at a closed loopback port.
fn configuration_pointing_nowhere(function: &str) -> Vec<(String, String)> {
    let queue = |channel: &str| format!("{NOWHERE}/123456789012/herald-cold-start-{channel}");
    vec![
        (
            "HERALD_TABLE_NAME".into(),
            format!("herald-cold-start-{function}"),
        ),
        ("HERALD_QUEUE_URL_MAIL".into(), queue("mail")),
        ("HERALD_QUEUE_URL_SLACK".into(), queue("slack")),
        ("HERALD_QUEUE_URL_MSTEAMS".into(), queue("msteams")),
        ("HERALD_QUEUE_URL_WEBHOOKS".into(), queue("webhooks")),
        ("SLACK_API_URL".into(), format!("{NOWHERE}/api")),
        ("AWS_ENDPOINT_URL".into(), NOWHERE.into()),
    ]
}

/// The binaries built from `functions/*`: each folder's name, in `release_dir`, that exists.
pub fn function_binaries(functions_dir: &Path, release_dir: &Path) -> BenchResult<Vec<PathBuf>> {
    let mut binaries = Vec::new();
    let entries = std::fs::read_dir(functions_dir)
        .map_err(|e| format!("{}: {e}", functions_dir.display()))?;
    for entry in entries {
        let entry = entry?;
        if !entry.path().join("Cargo.toml").is_file() {
            continue;
        }
        let binary = release_dir.join(entry.file_name());
        if binary.is_file() {
            binaries.push(binary);
        } else {
            eprintln!(
                "[bench] no {} (build it with cargo build --release -p {})",
                binary.display(),
                entry.file_name().to_string_lossy()
            );
        }
    }
    binaries.sort();
    Ok(binaries)
}
