//! [`AlertStore`] on the embedded store's SQLite database, and how an event's alerts are filed
//! (a child module of `embedded`, so it shares its connection and helpers).
//!
//! A user's alerts live in `alerts`, clustered by `(username, id)`: the bell is one seek. Filed
//! there one by one, an event's alerts cost one page written per recipient (4 MB for 1,000
//! recipients). So an event with at least [`FANOUT_MIN_RECIPIENTS`] recipients files its alert
//! once, in `alert_fanout`, with the sorted list of its recipients and their alert ids (a few
//! pages), in the transaction that records the event. Those rows are merged into `alerts` in
//! batches, in `(username, id)` order so each user's page is written once per batch: when they
//! hold [`MERGE_AT_RECIPIENTS`] recipients or [`MERGE_AT_ROWS`] rows, and before any change to
//! alerts (mark read, delete, trim, add), in that change's transaction. Reads see both, in one
//! read transaction: nothing is shown twice and nothing is missed across a merge.
//!
//! Access patterns and what serves them:
//! | pattern | served by |
//! |---|---|
//! | file one event's alerts | under [`FANOUT_MIN_RECIPIENTS`]: `INSERT .. ON CONFLICT(username, id) DO NOTHING` each; else one `alert_fanout` row, and a merge when the batch is full |
//! | a user's alerts, newest first, from a cursor | `alerts` primary key `(username, id)` read backwards (ids sort by time), with the user's line found in each pending `alert_fanout` row (at most [`MERGE_AT_ROWS`]) |
//! | a user's unread alerts and counts | the same two reads, filtering `read` (the clean-up keeps a user's newest 999 by default) |
//! | mark read, delete, trim | the pending rows merged first, then the `alerts` primary key |
//! | add alerts raised outside intake, once each | one transaction of `INSERT .. ON CONFLICT(username, id) DO NOTHING`, counting the rows inserted |

use super::{EmbeddedStore, backend, integer, unsigned};
use crate::domain::{Alert, EventId, Username};
use crate::ports::{AlertCounts, AlertPage, AlertStore, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

/// Events with fewer recipients file their alerts straight into `alerts`. From a handful of
/// recipients on, one row now and a batched merge later write fewer pages than a page per
/// recipient in every commit (under load, 21 recipients: 31 instead of 47 KiB written per
/// event, and a fifth less of the writer's time).
pub(super) const FANOUT_MIN_RECIPIENTS: usize = 4;
/// Pending recipients that make `alert_fanout` merge into `alerts`: each user's page is then
/// written once per this many filed alerts, and a read scans at most this many lines' worth.
/// Much of a merge's cost does not grow with what it carries (each recipient's last page is
/// rewritten once either way), so a larger batch makes each event's share smaller and each
/// read's scan longer: at 1,000 recipients an event took 13.8 ms with 16,384, 12.0 with
/// 32,768 and 10.1 with 65,536, and a user's first page of the bell with a full batch pending
/// about 0.4, 0.83 and 1.6 ms.
/// `cargo bench -p herald-shared --bench intake` measures both.
pub(super) const MERGE_AT_RECIPIENTS: i64 = 32_768;
/// Pending rows that make `alert_fanout` merge, whatever their recipients: a read looks at
/// every pending row.
pub(super) const MERGE_AT_ROWS: i64 = 64;

pub(super) const ALERT_COLUMNS: &str =
    "id, username, event_id, title, description, url, icon, source, created_at, read";

/// The columns an event's alerts share, as `alert_fanout` keeps them once.
const SHARED_COLUMNS: &str = "event_id, title, description, url, icon, source, created_at";

/// Inserts each of `alerts` unless its user has an alert with its id already (the read state
/// of that one stays); returns how many were inserted.
pub(super) fn insert_alerts(conn: &Connection, alerts: &[Alert]) -> Result<u64, StoreError> {
    let mut insert = insert_statement(conn)?;
    let mut inserted = 0;
    for a in alerts {
        inserted += insert
            .execute(params![
                a.id,
                a.username.as_str(),
                a.event_id.as_str(),
                a.title,
                a.description,
                a.url,
                a.icon,
                a.source,
                integer(a.created_at),
                a.read
            ])
            .map_err(backend)? as u64;
    }
    Ok(inserted)
}

fn insert_statement(conn: &Connection) -> Result<rusqlite::CachedStatement<'_>, StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO alerts ({ALERT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT(username, id) DO NOTHING"
    ))
    .map_err(backend)
}

pub(super) fn alert_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    Ok(Alert {
        id: row.get(0)?,
        username: Username(row.get(1)?),
        event_id: EventId(row.get(2)?),
        title: row.get(3)?,
        description: row.get(4)?,
        url: row.get(5)?,
        icon: row.get(6)?,
        source: row.get(7)?,
        created_at: unsigned(row, 8)?,
        read: row.get(9)?,
    })
}

/// Whether `a` and `b` differ only in their user and id (one event's alerts do).
fn same_content(a: &Alert, b: &Alert) -> bool {
    a.event_id == b.event_id
        && a.title == b.title
        && a.description == b.description
        && a.url == b.url
        && a.icon == b.icon
        && a.source == b.source
        && a.created_at == b.created_at
        && a.read == b.read
}

/// `alert_fanout`'s recipient list: a line `username TAB id` per recipient, sorted, between
/// newlines (usernames hold neither), so `\n{username}\t` finds a user's line. `None` when the
/// alerts do not fit one row: too few, not one event's, already read, or a user twice.
fn recipient_list(alerts: &[Alert]) -> Option<String> {
    let first = alerts.first()?;
    if alerts.len() < FANOUT_MIN_RECIPIENTS
        || first.read
        || !alerts.iter().all(|a| same_content(a, first))
    {
        return None;
    }
    let mut lines: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| (a.username.as_str(), a.id.as_str()))
        .collect();
    lines.sort_unstable();
    if lines.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return None;
    }
    let size = lines
        .iter()
        .map(|(u, id)| u.len() + id.len() + 2)
        .sum::<usize>()
        + 1;
    let mut list = String::with_capacity(size);
    list.push('\n');
    for (user, id) in lines {
        list.push_str(user);
        list.push('\t');
        list.push_str(id);
        list.push('\n');
    }
    Some(list)
}

/// Files one event's alerts in the transaction that records it: in `alert_fanout` when they
/// fit one row (merging the pending rows when the batch is full), else in `alerts`.
pub(super) fn file_event_alerts(conn: &Connection, alerts: &[Alert]) -> Result<(), StoreError> {
    let (Some(first), Some(list)) = (alerts.first(), recipient_list(alerts)) else {
        return insert_alerts(conn, alerts).map(|_| ());
    };
    conn.prepare_cached(&format!(
        "INSERT INTO alert_fanout ({SHARED_COLUMNS}, recipient_count, recipients)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))
    .and_then(|mut insert| {
        insert.execute(params![
            first.event_id.as_str(),
            first.title,
            first.description,
            first.url,
            first.icon,
            first.source,
            integer(first.created_at),
            integer(alerts.len() as u64),
            list
        ])
    })
    .map_err(backend)?;
    let (rows, recipients): (i64, i64) = conn
        .prepare_cached("SELECT COUNT(*), COALESCE(SUM(recipient_count), 0) FROM alert_fanout")
        .and_then(|mut count| count.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(backend)?;
    if rows >= MERGE_AT_ROWS || recipients >= MERGE_AT_RECIPIENTS {
        merge_pending(conn)?;
    }
    Ok(())
}

/// The shared columns of one `alert_fanout` row.
struct Shared {
    event_id: String,
    title: String,
    description: String,
    url: String,
    icon: String,
    source: String,
    created_at: u64,
}

impl Shared {
    /// Reads [`SHARED_COLUMNS`] from `row`, starting at column `at`.
    fn from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Shared> {
        Ok(Shared {
            event_id: row.get(at)?,
            title: row.get(at + 1)?,
            description: row.get(at + 2)?,
            url: row.get(at + 3)?,
            icon: row.get(at + 4)?,
            source: row.get(at + 5)?,
            created_at: unsigned(row, at + 6)?,
        })
    }

    fn alert(&self, username: &str, id: &str) -> Alert {
        Alert {
            id: id.to_owned(),
            username: Username(username.to_owned()),
            event_id: EventId(self.event_id.clone()),
            title: self.title.clone(),
            description: self.description.clone(),
            url: self.url.clone(),
            icon: self.icon.clone(),
            source: self.source.clone(),
            created_at: self.created_at,
            read: false,
        }
    }
}

fn unreadable_list(seq: i64) -> StoreError {
    StoreError::Backend(format!(
        "alert_fanout row {seq} has an unreadable recipient list"
    ))
}

/// Moves every pending `alert_fanout` row into `alerts`, in `(username, id)` order; returns
/// how many alerts were added (an alert a user has already is kept as it is).
pub(super) fn merge_pending(conn: &Connection) -> Result<u64, StoreError> {
    let mut select = conn
        .prepare_cached(&format!(
            "SELECT seq, {SHARED_COLUMNS}, recipients FROM alert_fanout ORDER BY seq"
        ))
        .map_err(backend)?;
    let mut rows = select.query([]).map_err(backend)?;
    let mut pending: Vec<(Shared, String)> = Vec::new();
    let mut last = None;
    while let Some(row) = rows.next().map_err(backend)? {
        let seq: i64 = row.get(0).map_err(backend)?;
        let list: String = row.get(8).map_err(|_| unreadable_list(seq))?;
        if list
            .split('\n')
            .any(|line| !line.is_empty() && !line.contains('\t'))
        {
            return Err(unreadable_list(seq));
        }
        pending.push((Shared::from_row(row, 1).map_err(backend)?, list));
        last = Some(seq);
    }
    drop(rows);
    let Some(last) = last else {
        return Ok(0);
    };
    // (username, id): the primary key's order.
    let mut lines: Vec<(&str, &str, &Shared)> = pending
        .iter()
        .flat_map(|(shared, list)| {
            list.split('\n')
                .filter_map(|line| line.split_once('\t'))
                .map(move |(username, id)| (username, id, shared))
        })
        .collect();
    lines.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut insert = insert_statement(conn)?;
    let mut added = 0;
    for (username, id, s) in lines {
        added += insert
            .execute(params![
                id,
                username,
                s.event_id,
                s.title,
                s.description,
                s.url,
                s.icon,
                s.source,
                integer(s.created_at),
                false
            ])
            .map_err(backend)? as u64;
    }
    conn.execute("DELETE FROM alert_fanout WHERE seq <= ?1", [last])
        .map_err(backend)?;
    Ok(added)
}

/// `username`'s alerts still pending in `alert_fanout` (all unread), but not one that
/// `alerts` holds already (an event recorded again after its record expired).
fn pending_for(conn: &Connection, username: &str) -> Result<Vec<Alert>, StoreError> {
    let needle = format!("\n{username}\t");
    let mut select = conn
        .prepare_cached(&format!(
            "SELECT seq, {SHARED_COLUMNS}, recipients FROM alert_fanout"
        ))
        .map_err(backend)?;
    let mut exists = conn
        .prepare_cached("SELECT 1 FROM alerts WHERE username = ?1 AND id = ?2")
        .map_err(backend)?;
    let mut rows = select.query([]).map_err(backend)?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let seq: i64 = row.get(0).map_err(backend)?;
        let list = row
            .get_ref(8)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(|_| unreadable_list(seq))?;
        let Some(at) = list.find(&needle) else {
            continue;
        };
        let rest = &list[at + needle.len()..];
        let id = rest.split('\n').next().unwrap_or_default();
        let filed = exists
            .query_row(params![username, id], |_| Ok(()))
            .optional()
            .map_err(backend)?
            .is_some();
        if !filed {
            found.push(
                Shared::from_row(row, 1)
                    .map_err(backend)?
                    .alert(username, id),
            );
        }
    }
    Ok(found)
}

/// Runs the read `work` in one read transaction, so `alerts` and `alert_fanout` are seen
/// as of one moment (a savepoint: on the writer's connection too, with no transaction open).
fn snapshot<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT herald_alerts_read")
        .map_err(backend)?;
    let result = work(conn);
    conn.execute_batch("RELEASE herald_alerts_read")
        .map_err(backend)?;
    result
}

#[async_trait]
impl AlertStore for EmbeddedStore {
    async fn alerts(
        &self,
        user: &Username,
        unread_only: bool,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<AlertPage, StoreError> {
        let cursor = crate::ports::alert_cursor(cursor)?;
        let limit = limit.max(1);
        let (username, cursor) = (user.as_str().to_owned(), cursor.map(str::to_owned));
        self.read(move |conn| {
            snapshot(conn, |conn| {
                let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE username = ?1");
                if cursor.is_some() {
                    sql.push_str(" AND id < ?2");
                }
                if unread_only {
                    sql.push_str(" AND read = 0");
                }
                // One more than asked tells whether another page follows.
                sql.push_str(&format!(
                    " ORDER BY id DESC LIMIT {}",
                    limit.saturating_add(1)
                ));
                let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
                let rows = match &cursor {
                    Some(cursor) => stmt.query_map(params![username, cursor], alert_from_row),
                    None => stmt.query_map(params![username], alert_from_row),
                }
                .map_err(backend)?;
                let mut items = rows
                    .collect::<rusqlite::Result<Vec<Alert>>>()
                    .map_err(backend)?;
                // Pending alerts are unread; those past the cursor were on earlier pages.
                let pending = pending_for(conn, &username)?;
                items.extend(
                    pending
                        .into_iter()
                        .filter(|a| cursor.as_ref().is_none_or(|c| a.id < *c)),
                );
                items.sort_unstable_by(|a, b| b.id.cmp(&a.id));
                let more = items.len() > limit;
                items.truncate(limit);
                let next_cursor = if more {
                    items.last().map(|a| a.id.clone())
                } else {
                    None
                };
                Ok(AlertPage { items, next_cursor })
            })
        })
        .await
    }

    async fn alert_counts(&self, user: &Username) -> Result<AlertCounts, StoreError> {
        let username = user.as_str().to_owned();
        self.read(move |conn| {
            snapshot(conn, |conn| {
                let filed = conn
                    .query_row(
                        "SELECT COUNT(*), COALESCE(SUM(read = 0), 0) FROM alerts WHERE username = ?1",
                        [&username],
                        |r| {
                            Ok(AlertCounts {
                                total: unsigned(r, 0)?,
                                unread: unsigned(r, 1)?,
                            })
                        },
                    )
                    .map_err(backend)?;
                let pending = pending_for(conn, &username)?.len() as u64;
                Ok(AlertCounts {
                    total: filed.total + pending,
                    unread: filed.unread + pending,
                })
            })
        })
        .await
    }

    async fn mark_alerts_read(
        &self,
        user: &Username,
        ids: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        let username = user.as_str().to_owned();
        let ids: Option<Vec<String>> = ids.map(|ids| {
            ids.iter()
                .filter(|id| Alert::is_valid_id(id))
                .cloned()
                .collect()
        });
        self.run(move |conn| {
            merge_pending(conn)?;
            let Some(ids) = &ids else {
                return conn
                    .execute(
                        "UPDATE alerts SET read = 1 WHERE username = ?1 AND read = 0",
                        [&username],
                    )
                    .map(|n| n as u64)
                    .map_err(backend);
            };
            let mut stmt = conn
                .prepare_cached(
                    "UPDATE alerts SET read = 1 WHERE username = ?1 AND id = ?2 AND read = 0",
                )
                .map_err(backend)?;
            let mut changed = 0;
            for id in ids {
                changed += stmt.execute(params![username, id]).map_err(backend)? as u64;
            }
            Ok(changed)
        })
        .await
    }

    async fn delete_alert(&self, user: &Username, id: &str) -> Result<bool, StoreError> {
        let (username, id) = (user.as_str().to_owned(), id.to_owned());
        self.run(move |conn| {
            merge_pending(conn)?;
            conn.execute(
                "DELETE FROM alerts WHERE username = ?1 AND id = ?2",
                params![username, id],
            )
            .map(|n| n > 0)
            .map_err(backend)
        })
        .await
    }

    async fn delete_alerts(&self, user: &Username) -> Result<u64, StoreError> {
        let username = user.as_str().to_owned();
        self.run(move |conn| {
            merge_pending(conn)?;
            conn.execute("DELETE FROM alerts WHERE username = ?1", [&username])
                .map(|n| n as u64)
                .map_err(backend)
        })
        .await
    }

    async fn trim_alerts(&self, user: &Username, keep: usize) -> Result<u64, StoreError> {
        let (username, keep) = (user.as_str().to_owned(), integer(keep as u64));
        self.run(move |conn| {
            merge_pending(conn)?;
            conn.execute(
                "DELETE FROM alerts WHERE username = ?1 AND id NOT IN
                    (SELECT id FROM alerts WHERE username = ?1 ORDER BY id DESC LIMIT ?2)",
                params![username, keep],
            )
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
    }

    async fn add_alerts(&self, alerts: &[Alert]) -> Result<u64, StoreError> {
        if alerts.is_empty() {
            return Ok(0);
        }
        let alerts = alerts.to_vec();
        self.run(move |conn| {
            merge_pending(conn)?;
            insert_alerts(conn, &alerts)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Event;
    use serde_json::json;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn event(n: usize) -> Event {
        let body = json!({"id": format!("wide-{n}"), "type": "scan_added", "title": "Scan"});
        Event::from_request(&body, String::new).unwrap_or_else(|e| panic!("{e}"))
    }

    fn users(count: usize) -> Vec<Username> {
        (0..count)
            .map(|i| Username(format!("user{i:05}")))
            .collect()
    }

    fn alerts_of(n: usize, users: &[Username]) -> Vec<Alert> {
        let e = event(n);
        users
            .iter()
            .map(|u| Alert::for_event(&e, u, 1_000 + n as u64))
            .collect()
    }

    /// Files `alerts` as intake does, in a write of their own.
    async fn file(store: &EmbeddedStore, alerts: Vec<Alert>) -> TestResult {
        store
            .run(move |conn| file_event_alerts(conn, &alerts))
            .await?;
        Ok(())
    }

    /// (pending rows, filed alerts).
    async fn sizes(store: &EmbeddedStore) -> Result<(i64, i64), StoreError> {
        store
            .read(|conn| {
                conn.query_row(
                    "SELECT (SELECT COUNT(*) FROM alert_fanout), (SELECT COUNT(*) FROM alerts)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(backend)
            })
            .await
    }

    #[test]
    fn only_one_events_unread_alerts_for_enough_distinct_users_share_a_row() {
        let many = alerts_of(1, &users(FANOUT_MIN_RECIPIENTS));
        let list = recipient_list(&many).unwrap_or_else(|| panic!("enough alike alerts fit a row"));
        assert!(list.starts_with("\nuser00000\t") && list.ends_with('\n'));
        assert_eq!(
            list.lines().filter(|l| !l.is_empty()).count(),
            FANOUT_MIN_RECIPIENTS
        );

        assert_eq!(recipient_list(&many[1..]), None, "too few");
        let mut mixed = many.clone();
        mixed[1] = alerts_of(2, &users(2))[1].clone();
        assert_eq!(recipient_list(&mixed), None, "two events");
        let mut read = many.clone();
        read.iter_mut().for_each(|a| a.read = true);
        assert_eq!(recipient_list(&read), None, "already read");
        let mut twice = many.clone();
        twice[1].username = twice[2].username.clone();
        assert_eq!(recipient_list(&twice), None, "a user twice");
        assert_eq!(recipient_list(&[]), None);
    }

    #[tokio::test]
    async fn given_wide_events_then_their_rows_merge_once_the_batch_is_full() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = EmbeddedStore::open(&dir.path().join("herald.db"))?;
        let members = users(FANOUT_MIN_RECIPIENTS);
        let rows = usize::try_from(MERGE_AT_ROWS)?;
        for n in 0..rows - 1 {
            file(&store, alerts_of(n, &members)).await?;
        }
        assert_eq!(sizes(&store).await?, (MERGE_AT_ROWS - 1, 0), "all pending");
        let last = members.last().cloned().unwrap_or_else(|| unreachable!());
        let counts = store.alert_counts(&last).await?;
        assert_eq!(
            (counts.total, counts.unread),
            (rows as u64 - 1, rows as u64 - 1)
        );
        file(&store, alerts_of(rows - 1, &members)).await?;
        let filed = i64::try_from(rows * members.len())?;
        assert_eq!(sizes(&store).await?, (0, filed), "merged by the full batch");

        // A batch full of recipients merges too, whatever the number of rows.
        let crowd = users(usize::try_from(MERGE_AT_RECIPIENTS)? / 2);
        file(&store, alerts_of(100, &crowd)).await?;
        assert_eq!(sizes(&store).await?.0, 1);
        file(&store, alerts_of(101, &crowd)).await?;
        let filed = filed + i64::try_from(2 * crowd.len())?;
        assert_eq!(sizes(&store).await?, (0, filed));

        // Each user has each alert once, newest first, all unread.
        let page = store.alerts(&last, false, 1_000, None).await?;
        assert_eq!(page.items.len(), rows + 2);
        let mut expected: Vec<String> = (0..rows)
            .chain([100, 101])
            .map(|n| Alert::for_event(&event(n), &last, 1_000 + n as u64).id)
            .collect();
        expected.reverse();
        let got: Vec<String> = page.items.iter().map(|a| a.id.clone()).collect();
        assert_eq!(got, expected);
        assert!(page.items.iter().all(|a| !a.read && a.title == "Scan"));
        Ok(())
    }

    #[tokio::test]
    async fn given_an_unreadable_recipient_list_then_the_merge_names_its_row_and_keeps_every_row()
    -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = EmbeddedStore::open(&dir.path().join("herald.db"))?;
        store
            .run(|conn| {
                conn.execute(
                    &format!(
                        "INSERT INTO alert_fanout (seq, {SHARED_COLUMNS}, recipient_count, recipients)
                         VALUES (7, 'e', 't', '', '', '', 'Herald', 1000, 1, '\nann-without-id\n'),
                                (8, 'e', 't', '', '', '', 'Herald', 1000, 1, '\nbob\t0000000001000-0\n')"
                    ),
                    [],
                )
                .map(|_| ())
                .map_err(backend)
            })
            .await?;
        let merged = store.run(|conn| merge_pending(conn)).await;
        assert!(
            matches!(&merged, Err(StoreError::Backend(m)) if m.contains("alert_fanout row 7")),
            "{merged:?}"
        );
        assert_eq!(sizes(&store).await?, (2, 0), "nothing half-merged");
        Ok(())
    }

    #[tokio::test]
    async fn given_a_pending_alert_filed_already_then_it_is_read_and_counted_once() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = EmbeddedStore::open(&dir.path().join("herald.db"))?;
        let members = users(FANOUT_MIN_RECIPIENTS);
        let alerts = alerts_of(1, &members);
        // Filed once and read, then the same alerts again (an event recorded anew after its
        // record expired): still one alert each, and the read state stays.
        let mut first = alerts[0].clone();
        first.read = true;
        store
            .run(move |conn| insert_alerts(conn, std::slice::from_ref(&first)))
            .await?;
        file(&store, alerts.clone()).await?;
        assert_eq!(sizes(&store).await?, (1, 1));
        let page = store.alerts(&members[0], false, 10, None).await?;
        assert_eq!(page.items.len(), 1);
        assert!(page.items[0].read);
        let counts = store.alert_counts(&members[0]).await?;
        assert_eq!((counts.total, counts.unread), (1, 0));

        // A change merges first: then the pending row is gone and nothing doubled.
        assert!(store.delete_alert(&members[1], &alerts[1].id).await?);
        assert_eq!(sizes(&store).await?, (0, i64::try_from(members.len())? - 1));
        assert_eq!(store.alert_counts(&members[0]).await?.total, 1);
        assert_eq!(store.alert_counts(&members[1]).await?.total, 0);
        Ok(())
    }
}
