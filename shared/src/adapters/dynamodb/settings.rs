//! [`SettingsStore`] on the DynamoDB table: system settings, the system and template
//! documents, personal and per-product notification settings.
use super::DynamoDbStore;
use super::attributes::{BODY, PERSONAL, USERNAME, names, s, string};
use super::items::parse_settings;
use super::keys::{Key, PK, SETTINGS_SK, SYSTEM_DOCUMENT_SK, TEMPLATE_DOCUMENT_SK, linked_item};
use super::requests::{EXISTS, Transaction, backend, cancelled};
use crate::domain::{NotificationSettings, ResourceId, SystemSettings, Username};
use crate::ports::{SettingsStore, StoreError};
use async_trait::async_trait;

impl DynamoDbStore {
    pub(super) async fn document(&self, sk: &str) -> Result<Option<String>, StoreError> {
        self.get(&Key::system(sk))
            .await?
            .map(|item| string(&item, BODY))
            .transpose()
    }

    pub(super) async fn put_document(&self, sk: &str, body: String) -> Result<(), StoreError> {
        let mut item = Key::system(sk).to_item();
        item.insert(BODY.to_owned(), s(body));
        self.count();
        self.client
            .put_item()
            .table_name(self.table.as_ref())
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend("PutItem"))?;
        Ok(())
    }

    pub(super) async fn notifications_document(
        &self,
        sk: &str,
    ) -> Result<NotificationSettings, StoreError> {
        match self.document(sk).await? {
            Some(body) => parse_settings(&body),
            None => Ok(NotificationSettings::defaults()),
        }
    }
}

#[async_trait]
impl SettingsStore for DynamoDbStore {
    async fn system_settings(&self) -> Result<SystemSettings, StoreError> {
        match self.document(SETTINGS_SK).await? {
            Some(body) => SystemSettings::from_stored(&body)
                .map_err(|e| StoreError::Backend(format!("unreadable system settings: {e}"))),
            None => Ok(SystemSettings::default()),
        }
    }

    async fn put_system_settings(&self, settings: &SystemSettings) -> Result<(), StoreError> {
        self.put_document(SETTINGS_SK, settings.to_stored()).await
    }

    async fn system_notifications(&self) -> Result<NotificationSettings, StoreError> {
        self.notifications_document(SYSTEM_DOCUMENT_SK).await
    }

    async fn put_system_notifications(
        &self,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        self.put_document(SYSTEM_DOCUMENT_SK, settings.to_stored())
            .await
    }

    async fn template_notifications(&self) -> Result<NotificationSettings, StoreError> {
        self.notifications_document(TEMPLATE_DOCUMENT_SK).await
    }

    async fn put_template_notifications(
        &self,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        self.put_document(TEMPLATE_DOCUMENT_SK, settings.to_stored())
            .await
    }

    async fn personal_notifications(
        &self,
        user: &Username,
    ) -> Result<NotificationSettings, StoreError> {
        match self.get(&Key::user(user.as_str())).await? {
            Some(item) => parse_settings(&string(&item, PERSONAL)?),
            None => Err(StoreError::NotFound(format!("user {user}"))),
        }
    }

    async fn put_personal_notifications(
        &self,
        user: &Username,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        self.count();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::user(user.as_str()).to_item()))
            .update_expression(format!("SET #{PERSONAL} = :personal"))
            .condition_expression(EXISTS)
            .set_expression_attribute_names(Some(names(&[PK, PERSONAL])))
            .expression_attribute_values(":personal", s(settings.to_stored()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::NotFound(format!("user {user}")))
            }
            Err(e) => Err(backend("UpdateItem")(e)),
        }
    }

    async fn product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<Option<NotificationSettings>, StoreError> {
        let key = Key::product_notifications(product.as_str(), user.as_str());
        match self.get(&key).await? {
            Some(item) => parse_settings(&string(&item, BODY)?).map(Some),
            None => Ok(None),
        }
    }

    async fn put_product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        const OPERATION: &str = "TransactWriteItems (product settings)";
        let (name, id) = (user.as_str(), product.as_str());
        let key = Key::product_notifications(id, name);
        let link = Key::product_notifications_link(name, id);
        let mut item = linked_item(&key, &link);
        item.insert(USERNAME.to_owned(), s(name));
        item.insert(BODY.to_owned(), s(settings.to_stored()));
        let items = vec![
            self.condition_check(&Key::user(name))?,
            self.condition_check(&Key::product(id))?,
            self.put(item, None)?,
            self.put(linked_item(&link, &key), None)?,
        ];
        match self.transact(OPERATION, items).await? {
            Transaction::Committed => Ok(()),
            Transaction::Cancelled(codes) => {
                if Transaction::condition_failed(&codes, 0) {
                    Err(StoreError::NotFound(format!("user {user}")))
                } else if Transaction::condition_failed(&codes, 1) {
                    Err(StoreError::NotFound(format!("product {product}")))
                } else {
                    Err(cancelled(OPERATION, &codes))
                }
            }
        }
    }

    async fn delete_product_notifications(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<bool, StoreError> {
        let (name, id) = (user.as_str(), product.as_str());
        self.delete_linked(
            &Key::product_notifications(id, name),
            &Key::product_notifications_link(name, id),
        )
        .await
    }
}
