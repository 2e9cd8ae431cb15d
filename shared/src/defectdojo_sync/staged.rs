//! What grows with a DefectDojo's data — engagements, active findings, risk acceptances — is
//! staged on disk as it is read, a page at a time, and applied from there once everything has
//! been read. So the sync holds a page of them in memory, not the whole set, and a DefectDojo
//! that fails half way still changes nothing in Herald.
//!
//! A staging file is created in the temporary directory (`TMPDIR`; `/tmp` on Lambda) and
//! unlinked at once: no other process sees it, and nothing is left behind by a crash. Each
//! record is one line, the body Herald's own API shows for it, read back through the same
//! validation. What stays in memory for the whole run is one id per record, for the removals.

use crate::adapters::defectdojo_api::{DefectDojoApi, DojoApiError};
use crate::domain::checks::{Engagement, Finding, RiskAcceptance};
use crate::domain::defectdojo::directory::DojoDirectory;
use crate::domain::defectdojo::records::{
    DojoEngagementRow, DojoFindingRow, DojoRiskAcceptanceRow, RecordReader,
};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// At most this many sentences are listed per kind of record left out; the rest are counted.
pub const SKIPPED_LISTED: usize = 100;

/// Why staging stopped.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error(transparent)]
    DefectDojo(#[from] DojoApiError),
    #[error(
        "nothing was changed in Herald: could not stage what DefectDojo answered in {dir}: {source}"
    )]
    Disk {
        dir: String,
        #[source]
        source: io::Error,
    },
    /// Reading a staging file back failed, once writing had begun.
    #[error("could not read back what was staged (the next run reads DefectDojo again): {0}")]
    ReadBack(#[source] io::Error),
}

impl From<io::Error> for StagingError {
    fn from(source: io::Error) -> Self {
        Self::Disk {
            dir: std::env::temp_dir().display().to_string(),
            source,
        }
    }
}

/// Lines being written to a staging file.
struct StagingFile {
    writer: BufWriter<File>,
    lines: usize,
}

impl StagingFile {
    fn new() -> io::Result<Self> {
        Ok(Self {
            writer: BufWriter::new(tempfile::tempfile()?),
            lines: 0,
        })
    }

    fn push(&mut self, line: &str) -> io::Result<()> {
        debug_assert!(!line.contains('\n'));
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }

    fn finish(self) -> io::Result<Staged> {
        let file = self.writer.into_inner().map_err(|e| e.into_error())?;
        Ok(Staged {
            file: Arc::new(file),
            lines: self.lines,
        })
    }
}

/// A finished staging file: its lines, read back in batches (clones read independently).
#[derive(Debug, Clone)]
pub struct Staged {
    file: Arc<File>,
    lines: usize,
}

impl Staged {
    /// How many lines it holds.
    pub fn len(&self) -> usize {
        self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Its lines in order, at most `size` at a time.
    pub fn batches(&self, size: usize) -> Batches {
        Batches {
            reader: BufReader::new(At {
                file: Arc::clone(&self.file),
                offset: 0,
            }),
            size: size.max(1),
        }
    }
}

/// Reads a shared file from its own offset.
struct At {
    file: Arc<File>,
    offset: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// The batches of a [`Staged`] file.
pub struct Batches {
    reader: BufReader<At>,
    size: usize,
}

impl Iterator for Batches {
    type Item = io::Result<Vec<String>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut batch = Vec::with_capacity(self.size);
        while batch.len() < self.size {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {
                    line.pop();
                    batch.push(line);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        (!batch.is_empty()).then_some(Ok(batch))
    }
}

/// One kind of record staged, with the ids it holds (for the removals).
#[derive(Debug, Clone)]
pub struct StagedKind {
    pub staged: Staged,
    pub ids: BTreeSet<String>,
}

/// DefectDojo's engagements, active findings and risk acceptances, as Herald keeps them,
/// staged on disk.
#[derive(Debug, Clone)]
pub struct StagedRecords {
    pub engagements: StagedKind,
    pub findings: StagedKind,
    pub risk_acceptances: StagedKind,
    /// What could not be carried over: at most [`SKIPPED_LISTED`] sentences per kind, then
    /// how many more.
    pub skipped: Vec<String>,
}

impl StagedRecords {
    /// Typed access for the apply step.
    pub fn engagement(line: &str) -> Result<Engagement, StagingError> {
        Engagement::from_stored(line).map_err(|e| corrupt("engagement", e))
    }

    pub fn finding(line: &str) -> Result<Finding, StagingError> {
        Finding::from_stored(line).map_err(|e| corrupt("finding", e))
    }

    pub fn risk_acceptance(line: &str) -> Result<RiskAcceptance, StagingError> {
        RiskAcceptance::from_stored(line).map_err(|e| corrupt("risk acceptance", e))
    }
}

fn corrupt(what: &str, e: crate::domain::FieldError) -> StagingError {
    StagingError::ReadBack(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a staged {what} does not read back: {e}"),
    ))
}

/// The sentences of one kind left out, the first [`SKIPPED_LISTED`] kept.
#[derive(Default)]
struct Skips {
    listed: Vec<String>,
    per_kind: BTreeMap<&'static str, usize>,
}

impl Skips {
    fn push(&mut self, kind: &'static str, sentence: String) {
        let n = self.per_kind.entry(kind).or_default();
        *n += 1;
        if *n <= SKIPPED_LISTED {
            self.listed.push(sentence);
        }
    }

    fn into_sentences(mut self) -> Vec<String> {
        for (kind, n) in self.per_kind {
            if let Some(more) = n.checked_sub(SKIPPED_LISTED).filter(|&more| more > 0) {
                self.listed
                    .push(format!("and {more} more {kind} were left out likewise"));
            }
        }
        self.listed
    }
}

/// Reads `dojo`'s engagements, active findings (`related_fields=true`, which names each
/// finding's product) and risk acceptances from `api`, page by page, each page turned into
/// Herald's records and staged before the next is read.
pub async fn stage_records(
    api: &DefectDojoApi,
    dojo: &DojoDirectory,
    progress: &(dyn Fn(&str, usize, Option<u64>) + Sync),
) -> Result<StagedRecords, StagingError> {
    let users = dojo.user_names();
    let products = dojo.product_ids();
    let mut reader = RecordReader::new(&users, &products);
    let mut skips = Skips::default();

    let engagements = stage_endpoint(
        api,
        ("engagements", &[]),
        progress,
        (&mut skips, "engagements"),
        |row: &DojoEngagementRow| {
            reader
                .engagement(row)
                .map(|e| (e.id.to_string(), e.to_json()))
        },
    )
    .await?;
    let findings = stage_endpoint(
        api,
        (
            "findings",
            &[("active", "true"), ("related_fields", "true")],
        ),
        progress,
        (&mut skips, "findings"),
        |row: &DojoFindingRow| reader.finding(row).map(|f| (f.id.to_string(), f.to_json())),
    )
    .await?;
    let risk_acceptances = stage_endpoint(
        api,
        ("risk_acceptance", &[]),
        progress,
        (&mut skips, "risk acceptances"),
        |row: &DojoRiskAcceptanceRow| {
            reader
                .risk_acceptance(row)
                .map(|r| (r.id.to_string(), r.to_json()))
        },
    )
    .await?;
    Ok(StagedRecords {
        engagements,
        findings,
        risk_acceptances,
        skipped: skips.into_sentences(),
    })
}

/// Reads `endpoint` (with `query`) page by page and stages what `convert` makes of each row,
/// an (id, body) pair, or lists why it left the row out under `kind`. A record DefectDojo
/// lists twice (a page shifted under a concurrent change) is staged once.
async fn stage_endpoint<T: DeserializeOwned + Send>(
    api: &DefectDojoApi,
    (endpoint, query): (&'static str, &[(&str, &str)]),
    progress: &(dyn Fn(&str, usize, Option<u64>) + Sync),
    (skips, kind): (&mut Skips, &'static str),
    mut convert: impl FnMut(&T) -> Result<(String, serde_json::Value), String> + Send,
) -> Result<StagedKind, StagingError> {
    let mut file = StagingFile::new()?;
    let mut ids = BTreeSet::new();
    api.each_page(
        endpoint,
        query,
        &|n, total| progress(endpoint, n, total),
        |rows: Vec<T>| -> Result<(), StagingError> {
            for row in &rows {
                match convert(row) {
                    Ok((id, body)) => {
                        if ids.insert(id) {
                            file.push(&body.to_string())?;
                        }
                    }
                    Err(why) => skips.push(kind, why),
                }
            }
            Ok(())
        },
    )
    .await?;
    Ok(StagedKind {
        staged: file.finish()?,
        ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(lines: &[&str]) -> Staged {
        let mut file = StagingFile::new().unwrap_or_else(|e| panic!("{e}"));
        for line in lines {
            file.push(line).unwrap_or_else(|e| panic!("{e}"));
        }
        file.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    fn read(staged: &Staged, size: usize) -> Vec<Vec<String>> {
        staged
            .batches(size)
            .collect::<io::Result<_>>()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn given_staged_lines_then_they_read_back_in_order_in_batches_and_clones_read_on_their_own() {
        let s = staged(&["{\"a\":1}", "{\"b\":\"é\"}", "{}"]);
        assert_eq!(s.len(), 3);
        assert_eq!(
            read(&s, 2),
            vec![
                vec!["{\"a\":1}".to_owned(), "{\"b\":\"é\"}".to_owned()],
                vec!["{}".to_owned()]
            ]
        );
        let clone = s.clone();
        let mut first = s.batches(1);
        let mut second = clone.batches(1);
        assert_eq!(
            first.next().and_then(Result::ok),
            Some(vec!["{\"a\":1}".to_owned()])
        );
        assert_eq!(
            second.next().and_then(Result::ok),
            Some(vec!["{\"a\":1}".to_owned()])
        );
        assert_eq!(
            first.next().and_then(Result::ok),
            Some(vec!["{\"b\":\"é\"}".to_owned()])
        );
        assert!(staged(&[]).batches(10).next().is_none());
    }

    #[test]
    fn given_more_skips_than_are_listed_then_the_rest_are_counted() {
        let mut skips = Skips::default();
        for i in 0..SKIPPED_LISTED + 7 {
            skips.push("findings", format!("finding {i}"));
        }
        skips.push("engagements", "engagement 1".to_owned());
        let sentences = skips.into_sentences();
        assert_eq!(sentences.len(), SKIPPED_LISTED + 2);
        assert_eq!(
            sentences.last().map(String::as_str),
            Some("and 7 more findings were left out likewise")
        );
    }
}
