//! The AWS side on loopback emulators: DynamoDB Local for the table, moto for the queues.
//!
//! [`Resources`] creates a fresh table and the four channel queues under names unique to the
//! run, remembers each one as soon as it asks for it, and [`Resources::remove`] deletes what
//! was created, whatever stopped the run.

use crate::BenchResult;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use herald_shared::adapters::DynamoDbStore;
use herald_shared::adapters::sqs::ChannelQueues;
use std::net::IpAddr;

/// Clients for the two emulators.
#[derive(Debug, Clone)]
pub struct Emulators {
    pub dynamodb_url: String,
    pub sqs_url: String,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Emulators {
    /// Clients for DynamoDB Local at `dynamodb_url` and moto at `sqs_url`, both on loopback,
    /// with dummy credentials.
    pub async fn connect(dynamodb_url: &str, sqs_url: &str) -> BenchResult<Emulators> {
        require_loopback("--dynamodb", dynamodb_url)?;
        require_loopback("--sqs", sqs_url)?;
        Ok(Emulators {
            dynamodb_url: dynamodb_url.to_owned(),
            sqs_url: sqs_url.to_owned(),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk_config(dynamodb_url).await),
            sqs: aws_sdk_sqs::Client::new(&sdk_config(sqs_url).await),
        })
    }
}

async fn sdk_config(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "herald-lambda-bench",
        ))
        .load()
        .await
}

/// `url` must be `http://` to a loopback address literal (127.0.0.0/8, [::1]) or `localhost`.
fn require_loopback(flag: &str, url: &str) -> BenchResult<()> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{flag} must be an http:// URL on loopback, got {url:?}"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!("{flag} must point at a loopback address, got {url:?}").into())
    }
}

/// A table and four channel queues made for one run.
#[derive(Debug, Default)]
pub struct Resources {
    table: Option<String>,
    queue_urls: Vec<String>,
}

/// The channels with a queue, in `ChannelQueues` order.
const QUEUE_CHANNELS: [&str; 4] = ["mail", "slack", "msteams", "webhooks"];

impl Resources {
    /// Creates table `herald-bench-{run}` (waiting until it is ACTIVE) and queues
    /// `herald-bench-{run}-{channel}`. On an error, what was created is still in `self`, for
    /// [`Resources::remove`].
    pub async fn create(
        &mut self,
        emulators: &Emulators,
        run: &str,
    ) -> BenchResult<(DynamoDbStore, ChannelQueues)> {
        let table = format!("herald-bench-{run}");
        self.table = Some(table.clone());
        let store = DynamoDbStore::new(emulators.dynamodb.clone(), table);
        store.create_table().await?;
        for channel in QUEUE_CHANNELS {
            let created = emulators
                .sqs
                .create_queue()
                .queue_name(format!("herald-bench-{run}-{channel}"))
                .send()
                .await
                .map_err(|e| format!("CreateQueue failed: {}", DisplayErrorContext(&e)))?;
            let url = created.queue_url.ok_or("CreateQueue returned no URL")?;
            self.queue_urls.push(url);
        }
        let [mail, slack, msteams, webhooks]: [String; 4] = self
            .queue_urls
            .clone()
            .try_into()
            .map_err(|_| "expected four queues")?;
        Ok((
            store,
            ChannelQueues {
                mail,
                slack,
                msteams,
                webhooks,
            },
        ))
    }

    /// Deletes the table and the queues; reports (and goes on past) each one that fails.
    pub async fn remove(&mut self, emulators: &Emulators) -> BenchResult<()> {
        let mut failures = Vec::new();
        if let Some(table) = self.table.take()
            && let Err(e) = emulators
                .dynamodb
                .delete_table()
                .table_name(&table)
                .send()
                .await
        {
            let not_found = e
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception());
            if !not_found {
                failures.push(format!("DeleteTable {table}: {}", DisplayErrorContext(&e)));
            }
        }
        for url in std::mem::take(&mut self.queue_urls) {
            if let Err(e) = emulators.sqs.delete_queue().queue_url(&url).send().await {
                failures.push(format!("DeleteQueue {url}: {}", DisplayErrorContext(&e)));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(format!("cleaning up failed: {}", failures.join("; ")).into())
        }
    }
}

/// The ARN of the queue at `url` (`eventSourceARN` of its records).
pub async fn queue_arn(emulators: &Emulators, url: &str) -> BenchResult<String> {
    let attributes = emulators
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes failed: {}", DisplayErrorContext(&e)))?;
    attributes
        .attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .ok_or_else(|| format!("no QueueArn for {url}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_emulators_are_accepted() {
        assert!(require_loopback("--x", "http://127.0.0.1:8000").is_ok());
        assert!(require_loopback("--x", "http://[::1]:8000/").is_ok());
        assert!(require_loopback("--x", "http://localhost:8000").is_ok());
        assert!(require_loopback("--x", "http://10.0.0.1:8000").is_err());
        assert!(require_loopback("--x", "https://127.0.0.1:8000").is_err());
        assert!(require_loopback("--x", "http://dynamodb.us-east-1.amazonaws.com").is_err());
    }
}
