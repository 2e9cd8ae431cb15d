//! `herald-lambda-bench`: Herald's real Lambda function binaries, run as Lambda runs them
//! against an emulated Lambda Runtime API on loopback, and measured from the outside.
//!
//! - `herald-lambda-bench sender-batch --binary PATH --dynamodb URL --sqs URL [--records 10]
//!   [--delay-ms 200] [--rounds 20]`: a Slack sender's batch latency, cold start, peak RSS and
//!   binary size against DynamoDB Local, moto and a Slack stand-in (`bench/sender-batch.sh`).
//! - `herald-lambda-bench cold-start [--binary PATH]... [--release-dir DIR] [--runs 5]`: spawn
//!   → first `next`, memory at that point and binary size, for any function binary.
//!
//! The pieces are reusable for any function: [`runtime_api`] is the emulated Runtime API,
//! [`function`] spawns a binary against it and times its cold start and invocations.
//!
//! Everything listens on and talks to 127.0.0.1 only; the functions get a clean environment
//! (no proxies, no AWS profile). Everything started is stopped, and everything created on
//! the emulators removed, when the run ends, fails or is interrupted. Tables go to stdout,
//! progress to stderr.

mod cold_start;
mod emulators;
mod function;
mod report;
mod runtime_api;
mod sender_batch;
mod slack_sink;

use clap::{Parser, Subcommand};
use report::{mib, ms, percentile, verdict};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Any error, shown as its message.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
/// A result with [`BenchError`].
pub type BenchResult<T> = Result<T, BenchError>;

/// The batch latency target: one SQS batch through the Slack sender.
const TARGET_BATCH: Duration = Duration::from_millis(300);
/// The memory target of a sender, peak RSS.
const TARGET_SENDER_RSS_BYTES: u64 = 40 * 1024 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "herald-lambda-bench",
    version,
    about = "Runs Herald's Lambda function binaries against an emulated Lambda Runtime API on loopback"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Batch latency of a Slack sender binary: SQS batches of Slack DMs, Slack answering
    /// after --delay-ms, against DynamoDB Local and moto.
    SenderBatch {
        /// The function binary (e.g. target/release/sender-slack).
        #[arg(long)]
        binary: PathBuf,
        /// DynamoDB Local's URL (loopback), e.g. $HERALD_TEST_DYNAMODB_URL.
        #[arg(long)]
        dynamodb: String,
        /// moto's URL (loopback), e.g. $HERALD_TEST_MOTO_URL.
        #[arg(long)]
        sqs: String,
        /// Records per batch, one Slack DM each (1 to 100).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
        records: u16,
        /// How long the Slack stand-in takes to answer a post, in ms (at most 9000: the
        /// sender gives up on Slack after 10 s).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(0..=9_000))]
        delay_ms: u64,
        /// Batches, one after the other (1 to 10000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=10_000))]
        rounds: u16,
        /// Where the function's log goes (default: a new directory under the temp dir).
        #[arg(long)]
        log_dir: Option<PathBuf>,
    },
    /// Cold start (spawn → first `next`), memory then and binary size of function binaries.
    /// No emulator is needed: nothing is invoked.
    ColdStart {
        /// A function binary; may be repeated.
        #[arg(long)]
        binary: Vec<PathBuf>,
        /// Also every binary in DIR named after a folder of --functions-dir.
        #[arg(long, value_name = "DIR")]
        release_dir: Option<PathBuf>,
        /// The folder holding one crate per function.
        #[arg(long, default_value = "functions")]
        functions_dir: PathBuf,
        /// Fresh processes per binary (1 to 100).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
        runs: u16,
        /// Where the functions' logs go (default: a new directory under the temp dir).
        #[arg(long)]
        log_dir: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let run_id = format!("{}-{}", std::process::id(), runtime_api::unix_ms());
    let outcome = match cli.command {
        Command::SenderBatch {
            binary,
            dynamodb,
            sqs,
            records,
            delay_ms,
            rounds,
            log_dir,
        } => {
            sender_batch_command(
                binary,
                dynamodb,
                sqs,
                usize::from(records),
                Duration::from_millis(delay_ms),
                usize::from(rounds),
                log_dir,
                &run_id,
            )
            .await
        }
        Command::ColdStart {
            binary,
            release_dir,
            functions_dir,
            runs,
            log_dir,
        } => {
            cold_start_command(
                binary,
                release_dir,
                &functions_dir,
                usize::from(runs),
                log_dir,
                &run_id,
            )
            .await
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[bench] ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `dir`, or a new directory for this run under the temp dir; created if missing.
fn log_dir(dir: Option<PathBuf>, run_id: &str) -> BenchResult<PathBuf> {
    let dir =
        dir.unwrap_or_else(|| std::env::temp_dir().join(format!("herald-lambda-bench-{run_id}")));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

#[allow(clippy::too_many_arguments)]
async fn sender_batch_command(
    binary: PathBuf,
    dynamodb_url: String,
    sqs_url: String,
    records: usize,
    delay: Duration,
    rounds: usize,
    log_dir_arg: Option<PathBuf>,
    run_id: &str,
) -> BenchResult<()> {
    let name = file_name(&binary);
    let args = sender_batch::SenderBatchArgs {
        log: log_dir(log_dir_arg, run_id)?.join(format!("{name}.log")),
        binary,
        dynamodb_url,
        sqs_url,
        records,
        delay,
        rounds,
    };
    let report = sender_batch::run(&args, run_id).await?;
    print_sender_batch(&report);
    Ok(())
}

fn print_sender_batch(report: &sender_batch::SenderBatchReport) {
    let batches = &report.batches;
    let p50 = percentile(batches, 50.0);
    let p90 = percentile(batches, 90.0);
    let min = batches.iter().min().copied().unwrap_or_default();
    let max = batches.iter().max().copied().unwrap_or_default();
    let first = batches.first().copied().unwrap_or_default();
    let warm = &batches[batches.len().min(1)..];
    let warm_max = warm.iter().max().copied().unwrap_or(max);
    let delay_ms = report.delay.as_millis();
    println!();
    println!("## Sender batch latency on an emulated Lambda Runtime API");
    println!();
    println!(
        "`{}` (release binary) run as Lambda runs it, everything on 127.0.0.1: the Runtime API emulated, \
         DynamoDB Local for the table, moto for the queues, Slack stood in for with every post answered \
         after {delay_ms} ms. {} rounds, each one SQS batch of {} Slack DMs (users with a known Slack id, \
         fresh deliveries every round). Batch = batch handed out → its `/response` received; cold start = \
         process spawned → its first `next`; peak RSS = `VmHWM` after the last round.",
        report.function,
        batches.len(),
        report.records
    );
    println!();
    println!(
        "| function | rounds | records/batch | Slack delay ms | batch p50 ms | p90 ms | min ms | max ms | first batch ms | cold start ms | peak RSS MiB | binary MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {delay_ms} | {} | {} | {} | {} | {} | {} | {} | {} |",
        report.function,
        batches.len(),
        report.records,
        ms(p50),
        ms(p90),
        ms(min),
        ms(max),
        ms(first),
        ms(report.cold_start),
        mib(report.peak_rss_bytes),
        mib(report.binary_bytes)
    );
    println!();
    println!(
        "Time beyond Slack's {delay_ms} ms: p50 {} ms, max {} ms.",
        ms(p50.saturating_sub(report.delay)),
        ms(max.saturating_sub(report.delay))
    );
    println!();
    println!("Targets:");
    println!(
        "- batch ≤ {} ms: p50 {} ms → {}; every batch after the first {} (max {} ms); first batch after the cold start {} ms → {}",
        TARGET_BATCH.as_millis(),
        ms(p50),
        verdict(p50 <= TARGET_BATCH),
        verdict(warm_max <= TARGET_BATCH),
        ms(warm_max),
        ms(first),
        verdict(first <= TARGET_BATCH)
    );
    println!(
        "- sender peak RSS ≤ {} MiB: {} MiB → {}",
        TARGET_SENDER_RSS_BYTES / (1024 * 1024),
        mib(report.peak_rss_bytes),
        verdict(report.peak_rss_bytes <= TARGET_SENDER_RSS_BYTES)
    );
    eprintln!("[bench] function log: {}", report.log.display());
}

async fn cold_start_command(
    mut binaries: Vec<PathBuf>,
    release_dir: Option<PathBuf>,
    functions_dir: &Path,
    runs: usize,
    log_dir_arg: Option<PathBuf>,
    run_id: &str,
) -> BenchResult<()> {
    if let Some(release_dir) = release_dir {
        binaries.extend(cold_start::function_binaries(functions_dir, &release_dir)?);
    }
    if binaries.is_empty() {
        return Err("no binary to measure: pass --binary PATH or --release-dir DIR".into());
    }
    let log_dir = log_dir(log_dir_arg, run_id)?;
    let mut measured = Vec::with_capacity(binaries.len());
    for binary in &binaries {
        eprintln!("[bench] cold start of {} ({runs} runs)", binary.display());
        let outcome = tokio::select! {
            outcome = cold_start::measure(binary, runs, &log_dir) => outcome,
            signal = shutdown_signal() => Err(format!("stopped by {signal}").into()),
        };
        measured.push(outcome?);
    }
    println!();
    println!("## Cold start on an emulated Lambda Runtime API");
    println!();
    println!(
        "Release binaries run as Lambda runs them (128 MB configured; nothing is invoked), {runs} fresh \
         processes each, on 127.0.0.1. Cold start = process spawned → its first `next`; RSS read at that point."
    );
    println!();
    println!(
        "| function | cold start p50 ms | min ms | max ms | RSS at first `next` MiB | peak RSS MiB | binary MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for m in &measured {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            m.function,
            ms(percentile(&m.starts, 50.0)),
            ms(m.starts.iter().min().copied().unwrap_or_default()),
            ms(m.starts.iter().max().copied().unwrap_or_default()),
            mib(m.memory.rss_bytes),
            mib(m.memory.peak_rss_bytes),
            mib(m.binary_bytes)
        );
    }
    eprintln!("[bench] function logs: {}", log_dir.display());
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || "function".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Resolves on SIGINT, SIGTERM or SIGHUP, naming it; never if signals cannot be watched.
pub(crate) async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(_) => std::future::pending().await,
        }
    };
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(mut terminate), Ok(mut hangup)) => tokio::select! {
            name = interrupt => name,
            _ = terminate.recv() => "SIGTERM",
            _ = hangup.recv() => "SIGHUP",
        },
        _ => interrupt.await,
    }
}
