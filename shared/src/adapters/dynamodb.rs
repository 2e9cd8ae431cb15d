//! placeholder
pub struct DynamoDbStore;
