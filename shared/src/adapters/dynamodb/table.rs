//! Creating the table, its index and its TTL, for the tests and benchmarks against DynamoDB
//! Local; on AWS the SAM template (`infra/template.yaml`) creates it.
use super::DynamoDbStore;
use super::attributes::EXPIRES_AT;
use super::keys::{GSI1, GSI1PK, GSI1SK, PK, SK};
use super::requests::{TABLE_ACTIVE_TIMEOUT, backend, build_error};
use crate::ports::StoreError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use std::time::Duration;

impl DynamoDbStore {
    /// Creates the table (on-demand billing, `PK`/`SK`, sparse `GSI1` projecting all
    /// attributes, TTL on `expires_at`) and waits until it and its index are ACTIVE. An
    /// existing table is fine.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(build_error)
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(GSI1)
            .key_schema(key(GSI1PK, KeyType::Hash)?)
            .key_schema(key(GSI1SK, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build_error)?;
        self.count();
        let created = self
            .client
            .create_table()
            .table_name(self.table.as_ref())
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute(PK)?)
            .attribute_definitions(attribute(SK)?)
            .attribute_definitions(attribute(GSI1PK)?)
            .attribute_definitions(attribute(GSI1SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .global_secondary_indexes(index)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(e) => return Err(backend("CreateTable")(e)),
        }
        let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
        loop {
            self.count();
            let described = self
                .client
                .describe_table()
                .table_name(self.table.as_ref())
                .send()
                .await
                .map_err(backend("DescribeTable"))?;
            if let Some(table) = described.table {
                let indexes_active = table
                    .global_secondary_indexes()
                    .iter()
                    .all(|i| i.index_status() == Some(&IndexStatus::Active));
                if table.table_status() == Some(&TableStatus::Active) && indexes_active {
                    return self.enable_time_to_live().await;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Backend(format!(
                    "DynamoDB table {} did not become ACTIVE within {} s",
                    self.table,
                    TABLE_ACTIVE_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Turns on TTL deletion by [`EXPIRES_AT`] (events and deliveries), unless it is on.
    pub(super) async fn enable_time_to_live(&self) -> Result<(), StoreError> {
        self.count();
        let described = self
            .client
            .describe_time_to_live()
            .table_name(self.table.as_ref())
            .send()
            .await
            .map_err(backend("DescribeTimeToLive"))?;
        let status = described
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status());
        if matches!(
            status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ) {
            return Ok(());
        }
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(EXPIRES_AT)
            .enabled(true)
            .build()
            .map_err(build_error)?;
        self.count();
        self.client
            .update_time_to_live()
            .table_name(self.table.as_ref())
            .time_to_live_specification(specification)
            .send()
            .await
            .map_err(backend("UpdateTimeToLive"))?;
        Ok(())
    }
}
