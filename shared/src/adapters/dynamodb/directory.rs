//! [`DirectoryStore`] on the DynamoDB table: users, product types, products, memberships,
//! and the audiences read from them.
use super::attributes::{
    BODY, EMAIL, FIRST_NAME, ID, IS_ACTIVE, IS_ADMIN, LAST_NAME, NAME, PERSONAL, PRODUCT_TYPE_ID,
    PRODUCTS, SLACK_EMAIL, SLACK_USER_ID, USERNAME, boolean, names, s, string,
};
use super::items::{parse_settings, product_from_item, product_item, user_from_item};
use super::keys::{
    ADMINS, ALL_PRODUCTS, GSI1, GSI1PK, GSI1SK, Key, MEMBER_PREFIX, NOTIFY_PREFIX, PK,
    PRODUCT_MEMBER_LINK, PRODUCT_NOTIFY_LINK, PRODUCT_SK, PTYPE_MEMBER_LINK, Parent, SK, USER_SK,
    USERS, linked_item, product_pk, product_type_index_prefix, product_type_pk, user_pk,
};
use super::requests::{
    EXISTS, MAX_ATTEMPTS, NOT_EXISTS, Transaction, backend, backoff, build_error, cancelled,
    condition_failed,
};
use super::{DynamoDbStore, Item};
use crate::domain::{
    AudienceMember, NotificationSettings, Product, ProductAccess, ProductAudience, ProductType,
    ResourceId, User, UserProfile, Username, ViewableProduct,
};
use crate::ports::{DirectoryStore, StoreError, UserWrite};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use futures_util::future::try_join_all;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Which `GSI1SK`s of a partition [`DynamoDbStore::query_index`] reads.
#[derive(Debug, Clone, Copy)]
pub(super) enum IndexSort<'a> {
    Any,
    BeginsWith(&'a str),
    Below(&'a str),
    AtLeast(&'a str),
}

impl DynamoDbStore {
    pub(super) async fn read_product(&self, id: &str) -> Result<Option<Product>, StoreError> {
        self.get(&Key::product(id))
            .await?
            .map(|item| product_from_item(&item))
            .transpose()
    }

    /// The `GSI1` `ADMINS` items (eventually consistent), all pages; `projection` as above.
    pub(super) async fn query_admins(
        &self,
        projection: Option<&[&str]>,
    ) -> Result<Vec<Item>, StoreError> {
        self.query_roster(ADMINS, projection).await
    }

    /// The users in one `GSI1` roster partition (`ADMINS` or `USERS`), eventually consistent,
    /// all pages; `projection` as above.
    pub(super) async fn query_roster(
        &self,
        roster: &str,
        projection: Option<&[&str]>,
    ) -> Result<Vec<Item>, StoreError> {
        self.query_index(roster, IndexSort::Any, projection, usize::MAX)
            .await
    }

    /// The items of one `GSI1` partition whose `GSI1SK` satisfies `sort`, in index order,
    /// eventually consistent, at most `limit` (`usize::MAX`: every page); `projection` as
    /// above.
    pub(super) async fn query_index(
        &self,
        partition: &str,
        sort: IndexSort<'_>,
        projection: Option<&[&str]>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut attribute_names = names(&[GSI1PK]);
        let mut condition = format!("#{GSI1PK} = :partition");
        let mut values = HashMap::from([(":partition".to_owned(), s(partition))]);
        let bound = match sort {
            IndexSort::Any => None,
            IndexSort::BeginsWith(v) => Some((format!("begins_with(#{GSI1SK}, :sort)"), v)),
            IndexSort::Below(v) => Some((format!("#{GSI1SK} < :sort"), v)),
            IndexSort::AtLeast(v) => Some((format!("#{GSI1SK} >= :sort"), v)),
        };
        if let Some((expression, value)) = bound {
            attribute_names.extend(names(&[GSI1SK]));
            condition.push_str(&format!(" AND {expression}"));
            values.insert(":sort".to_owned(), s(value));
        }
        let projection_expression = projection.map(|attributes| {
            attribute_names.extend(names(attributes));
            attributes
                .iter()
                .map(|a| format!("#{a}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let mut items = Vec::new();
        let mut start = None;
        while items.len() < limit {
            let page_limit = i32::try_from(limit - items.len()).ok();
            self.count();
            let page = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(GSI1)
                .key_condition_expression(&condition)
                .set_expression_attribute_names(Some(attribute_names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .set_projection_expression(projection_expression.clone())
                .set_limit(page_limit)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend("Query GSI1"))?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        items.truncate(limit);
        Ok(items)
    }

    /// The user item's `UpdateItem` (`put_user`), on `condition` if any: the item's old
    /// attributes (empty for a new user), `None` when the condition failed.
    async fn write_user(
        &self,
        name: &str,
        expression: String,
        values: HashMap<String, AttributeValue>,
        condition: Option<String>,
    ) -> Result<Option<Item>, StoreError> {
        // DynamoDB refuses a name the expressions do not use.
        let used: Vec<&str> = [
            USERNAME,
            FIRST_NAME,
            LAST_NAME,
            IS_ACTIVE,
            IS_ADMIN,
            PERSONAL,
            EMAIL,
            SLACK_EMAIL,
            SLACK_USER_ID,
            GSI1PK,
            GSI1SK,
        ]
        .into_iter()
        .filter(|a| {
            let name = format!("#{a}");
            let named = |text: &str| {
                text.match_indices(&name).any(|(at, _)| {
                    !text[at + name.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            };
            named(&expression) || condition.as_deref().is_some_and(named)
        })
        .collect();
        self.count();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::user(name).to_item()))
            .update_expression(expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names(Some(names(&used)))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(output.attributes.unwrap_or_default())),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(backend("UpdateItem")(e)),
        }
    }

    /// `ADD products :delta` on a product type that must exist.
    pub(super) fn count_products(
        &self,
        product_type: &str,
        delta: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::product_type(product_type).to_item()))
            .update_expression(format!("ADD #{PRODUCTS} :delta"))
            .condition_expression(EXISTS)
            .set_expression_attribute_names(Some(names(&[PK, PRODUCTS])))
            .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Deletes a product item and counts it off its type, atomically; whether it existed.
    pub(super) async fn delete_product_item(&self, id: &ResourceId) -> Result<bool, StoreError> {
        const OPERATION: &str = "TransactWriteItems (delete product)";
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let Some(product) = self.read_product(id.as_str()).await? else {
                return Ok(false);
            };
            // Delete only if the product is still as read, so the right type is counted off.
            let delete = Delete::builder()
                .table_name(self.table.as_ref())
                .set_key(Some(Key::product(id.as_str()).to_item()))
                .condition_expression(format!("#{PRODUCT_TYPE_ID} = :type"))
                .set_expression_attribute_names(Some(names(&[PRODUCT_TYPE_ID])))
                .expression_attribute_values(":type", s(product.product_type_id.as_str()))
                .build()
                .map_err(build_error)?;
            let items = vec![
                TransactWriteItem::builder().delete(delete).build(),
                self.count_products(product.product_type_id.as_str(), -1)?,
            ];
            match self.transact(OPERATION, items).await? {
                Transaction::Committed => return Ok(true),
                // Changed or deleted since the read: read again.
                Transaction::Cancelled(codes) if Transaction::condition_failed(&codes, 0) => {}
                Transaction::Cancelled(codes) => return Err(cancelled(OPERATION, &codes)),
            }
        }
        Err(StoreError::Conflict(format!(
            "product {id} is being changed concurrently; try again"
        )))
    }

    pub(super) async fn put_member(
        &self,
        parent: Parent,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "TransactWriteItems (membership)";
        let (id_str, name) = (id.as_str(), user.as_str());
        let (member, link) = (parent.member(id_str, name), parent.link(id_str, name));
        let mut member_item = linked_item(&member, &link);
        member_item.insert(USERNAME.to_owned(), s(name));
        let items = vec![
            self.condition_check(&parent.key(id_str))?,
            self.condition_check(&Key::user(name))?,
            self.put(member_item, Some(NOT_EXISTS))?,
            self.put(linked_item(&link, &member), None)?,
        ];
        match self.transact(OPERATION, items).await? {
            Transaction::Committed => Ok(true),
            Transaction::Cancelled(codes) => {
                if Transaction::condition_failed(&codes, 0) {
                    Err(StoreError::NotFound(parent.label(id)))
                } else if Transaction::condition_failed(&codes, 1) {
                    Err(StoreError::NotFound(format!("user {user}")))
                } else if Transaction::condition_failed(&codes, 2) {
                    Ok(false)
                } else {
                    Err(cancelled(OPERATION, &codes))
                }
            }
        }
    }
}

#[async_trait]
impl DirectoryStore for DynamoDbStore {
    async fn put_user(
        &self,
        user: &Username,
        profile: &UserProfile,
        template: &NotificationSettings,
    ) -> Result<UserWrite, StoreError> {
        let name = user.as_str();
        let mut set = vec![
            format!("#{USERNAME} = :{USERNAME}"),
            format!("#{FIRST_NAME} = :{FIRST_NAME}"),
            format!("#{LAST_NAME} = :{LAST_NAME}"),
            format!("#{IS_ACTIVE} = :{IS_ACTIVE}"),
            format!("#{IS_ADMIN} = :{IS_ADMIN}"),
            // Atomic: only the write that creates the item copies the template.
            format!("#{PERSONAL} = if_not_exists(#{PERSONAL}, :template)"),
        ];
        let mut remove = Vec::new();
        let mut values = HashMap::from([
            (format!(":{USERNAME}"), s(name)),
            (format!(":{FIRST_NAME}"), s(&profile.first_name)),
            (format!(":{LAST_NAME}"), s(&profile.last_name)),
            (
                format!(":{IS_ACTIVE}"),
                AttributeValue::Bool(profile.is_active),
            ),
            (
                format!(":{IS_ADMIN}"),
                AttributeValue::Bool(profile.is_admin),
            ),
            (":template".to_owned(), s(template.to_stored())),
        ]);
        let optional = [(EMAIL, &profile.email), (SLACK_EMAIL, &profile.slack_email)];
        for (attribute, value) in optional {
            match value {
                Some(value) => {
                    set.push(format!("#{attribute} = :{attribute}"));
                    values.insert(format!(":{attribute}"), s(value));
                }
                None => remove.push(format!("#{attribute}")),
            }
        }
        // Administrators in their own `GSI1` partition (the audience reads it), everyone else
        // in `USERS` (the alert clean-up lists both).
        set.push(format!("#{GSI1PK} = :roster, #{GSI1SK} = :user_key"));
        values.insert(
            ":roster".to_owned(),
            s(if profile.is_admin { ADMINS } else { USERS }),
        );
        values.insert(":user_key".to_owned(), s(user_pk(name)));
        // The Slack id a sender looked up for `slack_email` is kept while `slack_email` stays
        // (a directory sync does not know it); a profile that names one sets it.
        let keep_slack_id = match &profile.slack_user_id {
            Some(id) => {
                set.push(format!("#{SLACK_USER_ID} = :{SLACK_USER_ID}"));
                values.insert(format!(":{SLACK_USER_ID}"), s(id));
                None
            }
            None => Some(match &profile.slack_email {
                Some(email) => {
                    values.insert(":old_slack_email".to_owned(), s(email));
                    format!("#{SLACK_EMAIL} = :old_slack_email")
                }
                None => format!("attribute_not_exists(#{SLACK_EMAIL})"),
            }),
        };
        let expression = |remove: &[String]| {
            let mut expression = format!("SET {}", set.join(", "));
            if !remove.is_empty() {
                expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
            }
            expression
        };
        // First with the id kept, on condition that `slack_email` is unchanged; when it
        // changed, again with the id removed (the id found for another address is wrong).
        let output = match keep_slack_id {
            None => {
                self.write_user(name, expression(&remove), values, None)
                    .await?
            }
            Some(unchanged) => {
                match self
                    .write_user(name, expression(&remove), values.clone(), Some(unchanged))
                    .await?
                {
                    Some(output) => Some(output),
                    None => {
                        values.remove(":old_slack_email");
                        remove.push(format!("#{SLACK_USER_ID}"));
                        self.write_user(name, expression(&remove), values, None)
                            .await?
                    }
                }
            }
        };
        let existed = output.is_some_and(|old| !old.is_empty());
        Ok(if existed {
            UserWrite::Updated
        } else {
            UserWrite::Created
        })
    }

    async fn user(&self, user: &Username) -> Result<Option<User>, StoreError> {
        self.get(&Key::user(user.as_str()))
            .await?
            .map(|item| user_from_item(&item))
            .transpose()
    }

    async fn set_slack_user_id(
        &self,
        user: &Username,
        slack_email: &str,
        slack_user_id: &str,
    ) -> Result<bool, StoreError> {
        self.count();
        let result = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::user(user.as_str()).to_item()))
            .update_expression(format!("SET #{SLACK_USER_ID} = :id"))
            // Only while the user still has the address it was looked up for.
            .condition_expression(format!("#{SLACK_EMAIL} = :email"))
            .set_expression_attribute_names(Some(names(&[SLACK_EMAIL, SLACK_USER_ID])))
            .expression_attribute_values(":id", s(slack_user_id))
            .expression_attribute_values(":email", s(slack_email))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("UpdateItem")(e)),
        }
    }

    async fn delete_user(&self, user: &Username) -> Result<bool, StoreError> {
        // The user item first: from then on no membership or settings write can pass its
        // condition check, so the Query below sees every link there will be.
        let existed = self.delete_item(&Key::user(user.as_str())).await?;
        self.purge_partition(&Key::user(user.as_str())).await?;
        Ok(existed)
    }

    async fn put_product_type(&self, product_type: &ProductType) -> Result<bool, StoreError> {
        self.count();
        let output = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::product_type(product_type.id.as_str()).to_item()))
            .update_expression(format!("SET #{ID} = :id, #{NAME} = :name"))
            .set_expression_attribute_names(Some(names(&[ID, NAME])))
            .expression_attribute_values(":id", s(product_type.id.as_str()))
            .expression_attribute_values(":name", s(&product_type.name))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(backend("UpdateItem"))?;
        Ok(output.attributes.is_none_or(|old| old.is_empty()))
    }

    async fn product_type(&self, id: &ResourceId) -> Result<Option<ProductType>, StoreError> {
        self.get(&Key::product_type(id.as_str()))
            .await?
            .map(|item| {
                Ok(ProductType {
                    id: ResourceId(string(&item, ID)?),
                    name: string(&item, NAME)?,
                })
            })
            .transpose()
    }

    async fn delete_product_type(&self, id: &ResourceId) -> Result<bool, StoreError> {
        // `products` is kept in step with the products by the transactions that write them,
        // so this condition is exact (a GSI query could miss a product written a moment ago).
        self.count();
        let result = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .set_key(Some(Key::product_type(id.as_str()).to_item()))
            .condition_expression(format!(
                "attribute_not_exists(#{PRODUCTS}) OR #{PRODUCTS} = :zero"
            ))
            .set_expression_attribute_names(Some(names(&[PRODUCTS])))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let existed = match result {
            Ok(output) => output.attributes.is_some_and(|old| !old.is_empty()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                return Err(StoreError::Conflict(format!(
                    "product type {id} still has products; delete or move them first"
                )));
            }
            Err(e) => return Err(backend("DeleteItem")(e)),
        };
        // Memberships cannot be added any more (their transaction checks the type exists).
        self.purge_partition(&Key::product_type(id.as_str()))
            .await?;
        Ok(existed)
    }

    async fn put_product_type_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.put_member(Parent::ProductType, id, user).await
    }

    async fn delete_product_type_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        let (id, name) = (id.as_str(), user.as_str());
        let parent = Parent::ProductType;
        self.delete_linked(&parent.member(id, name), &parent.link(id, name))
            .await
    }

    async fn put_product(&self, product: &Product) -> Result<bool, StoreError> {
        const OPERATION: &str = "TransactWriteItems (product)";
        let (id, new_type) = (product.id.as_str(), product.product_type_id.as_str());
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let old_type = self.read_product(id).await?.map(|p| p.product_type_id);
            // Put only if the product is still as read, so the counts stay exact.
            let put = match &old_type {
                None => self.put(product_item(product), Some(NOT_EXISTS))?,
                Some(old) => {
                    let condition = Put::builder()
                        .table_name(self.table.as_ref())
                        .set_item(Some(product_item(product)))
                        .condition_expression(format!("#{PRODUCT_TYPE_ID} = :old_type"))
                        .set_expression_attribute_names(Some(names(&[PRODUCT_TYPE_ID])))
                        .expression_attribute_values(":old_type", s(old.as_str()))
                        .build()
                        .map_err(build_error)?;
                    TransactWriteItem::builder().put(condition).build()
                }
            };
            let mut items = vec![put];
            match &old_type {
                Some(old) if old.as_str() == new_type => {
                    items.push(self.condition_check(&Key::product_type(new_type))?);
                }
                Some(old) => {
                    items.push(self.count_products(new_type, 1)?);
                    items.push(self.count_products(old.as_str(), -1)?);
                }
                None => items.push(self.count_products(new_type, 1)?),
            }
            match self.transact(OPERATION, items).await? {
                Transaction::Committed => return Ok(old_type.is_none()),
                Transaction::Cancelled(codes) => {
                    if Transaction::condition_failed(&codes, 1) {
                        return Err(StoreError::NotFound(format!(
                            "product type {}",
                            product.product_type_id
                        )));
                    }
                    if !Transaction::condition_failed(&codes, 0) {
                        return Err(cancelled(OPERATION, &codes));
                    }
                    // The product changed between the read and the write: read again.
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "product {} is being changed concurrently; try again",
            product.id
        )))
    }

    async fn product(&self, id: &ResourceId) -> Result<Option<Product>, StoreError> {
        self.read_product(id.as_str()).await
    }

    async fn delete_product(&self, id: &ResourceId) -> Result<bool, StoreError> {
        let existed = self.delete_product_item(id).await?;
        // Also clears what an interrupted earlier delete left behind. No membership or
        // settings write can pass its condition check once the product item is gone.
        self.purge_partition(&Key::product(id.as_str())).await?;
        Ok(existed)
    }

    async fn put_product_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        self.put_member(Parent::Product, id, user).await
    }

    async fn delete_product_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError> {
        let (id, name) = (id.as_str(), user.as_str());
        let parent = Parent::Product;
        self.delete_linked(&parent.member(id, name), &parent.link(id, name))
            .await
    }

    async fn product_access(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<ProductAccess, StoreError> {
        let product = self
            .read_product(product.as_str())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("product {product}")))?;
        let (id, type_id, name) = (
            product.id.as_str(),
            product.product_type_id.as_str(),
            user.as_str(),
        );
        let user_key = Key::user(name);
        let product_member = Parent::Product.member(id, name);
        let type_member = Parent::ProductType.member(type_id, name);
        let keys = BTreeSet::from([
            user_key.clone(),
            product_member.clone(),
            type_member.clone(),
        ]);
        let mut found = HashMap::new();
        for item in self.batch_get(keys).await? {
            found.insert(Key::from_item(&item)?, item);
        }
        let Some(user_item) = found.get(&user_key) else {
            return Ok(ProductAccess::default());
        };
        Ok(ProductAccess {
            is_admin: boolean(user_item, IS_ADMIN)?,
            is_product_member: found.contains_key(&product_member),
            is_product_type_member: found.contains_key(&type_member),
        })
    }

    async fn viewable_products(
        &self,
        user: &Username,
    ) -> Result<Option<Vec<ViewableProduct>>, StoreError> {
        // The user's partition holds the user item and a link per membership and per product
        // they keep settings for: one consistent query.
        let mut is_admin = None;
        let (mut member_of, mut type_member_of, mut with_settings) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for item in self
            .query_partition(&user_pk(user.as_str()), None, Some(&[SK, IS_ADMIN]))
            .await?
        {
            let sk = string(&item, SK)?;
            if sk == USER_SK {
                is_admin = Some(boolean(&item, IS_ADMIN)?);
            } else if let Some(id) = sk.strip_prefix(PRODUCT_MEMBER_LINK) {
                member_of.insert(id.to_owned());
            } else if let Some(id) = sk.strip_prefix(PTYPE_MEMBER_LINK) {
                type_member_of.insert(id.to_owned());
            } else if let Some(id) = sk.strip_prefix(PRODUCT_NOTIFY_LINK) {
                with_settings.insert(id.to_owned());
            }
        }
        let Some(is_admin) = is_admin else {
            return Ok(None);
        };
        // An administrator's products are the whole index; anyone else's are their product
        // types' products (one query per type, together) and the products they are members of.
        let mut items = if is_admin {
            self.query_index(ALL_PRODUCTS, IndexSort::Any, None, usize::MAX)
                .await?
        } else {
            let prefixes: Vec<String> = type_member_of
                .iter()
                .map(|t| product_type_index_prefix(t))
                .collect();
            try_join_all(prefixes.iter().map(|prefix| {
                self.query_index(
                    ALL_PRODUCTS,
                    IndexSort::BeginsWith(prefix),
                    None,
                    usize::MAX,
                )
            }))
            .await?
            .into_iter()
            .flatten()
            .collect()
        };
        let mut products = BTreeMap::new();
        for item in &items {
            let product = product_from_item(item)?;
            products.insert(product.id.as_str().to_owned(), product);
        }
        let missing: BTreeSet<Key> = member_of
            .iter()
            .filter(|id| !products.contains_key(id.as_str()))
            .map(|id| Key::product(id))
            .collect();
        items = self.batch_get(missing).await?;
        for item in &items {
            let product = product_from_item(item)?;
            products.insert(product.id.as_str().to_owned(), product);
        }
        let mut viewable: Vec<ViewableProduct> = products
            .into_values()
            .map(|product| {
                let access = ProductAccess {
                    is_admin,
                    is_product_member: member_of.contains(product.id.as_str()),
                    is_product_type_member: type_member_of
                        .contains(product.product_type_id.as_str()),
                };
                let has_settings = with_settings.contains(product.id.as_str());
                ViewableProduct {
                    product,
                    access,
                    has_settings,
                }
            })
            // The index may still list a product under the type it just left.
            .filter(|p| p.access.may_view())
            .collect();
        ViewableProduct::sort(&mut viewable);
        Ok(Some(viewable))
    }

    async fn product_audience(
        &self,
        product: &ResourceId,
    ) -> Result<Option<ProductAudience>, StoreError> {
        let partition_key = product_pk(product.as_str());
        let (partition, admins) = tokio::join!(
            self.query_partition(&partition_key, None, None),
            self.query_admins(Some(&[USERNAME])),
        );
        let mut found = None;
        let mut product_members = BTreeSet::new();
        let mut product_settings = HashMap::new();
        for item in partition? {
            let sk = string(&item, SK)?;
            if sk == PRODUCT_SK {
                found = Some(product_from_item(&item)?);
            } else if sk.starts_with(MEMBER_PREFIX) {
                product_members.insert(string(&item, USERNAME)?);
            } else if sk.starts_with(NOTIFY_PREFIX) {
                product_settings.insert(
                    string(&item, USERNAME)?,
                    parse_settings(&string(&item, BODY)?)?,
                );
            }
        }
        let Some(product) = found else {
            return Ok(None);
        };
        let type_members = self
            .query_partition(
                &product_type_pk(product.product_type_id.as_str()),
                Some(MEMBER_PREFIX),
                Some(&[USERNAME]),
            )
            .await?
            .iter()
            .map(|item| string(item, USERNAME))
            .collect::<Result<BTreeSet<String>, StoreError>>()?;
        let admin_candidates = admins?
            .iter()
            .map(|item| string(item, USERNAME))
            .collect::<Result<BTreeSet<String>, StoreError>>()?;
        let candidates: BTreeSet<Key> = product_members
            .iter()
            .chain(&type_members)
            .chain(&admin_candidates)
            .map(|name| Key::user(name))
            .collect();
        // Sorted by username; users deleted meanwhile have no item and drop out.
        let mut users = BTreeMap::new();
        for item in self.batch_get(candidates).await? {
            let user = user_from_item(&item)?;
            users.insert(user.username.clone(), (user, string(&item, PERSONAL)?));
        }
        let mut members = Vec::with_capacity(users.len());
        for (username, (user, personal)) in users {
            let name = username.as_str();
            // An administrator counts only if the (consistent) user item still says so.
            if product_members.contains(name)
                || type_members.contains(name)
                || user.profile.is_admin
            {
                members.push(AudienceMember {
                    personal: parse_settings(&personal)?,
                    product_settings: product_settings.remove(name),
                    user,
                });
            }
        }
        Ok(Some(ProductAudience { product, members }))
    }

    async fn administrators(&self) -> Result<Vec<User>, StoreError> {
        let mut admins = self
            .query_admins(None)
            .await?
            .iter()
            .map(user_from_item)
            .collect::<Result<Vec<User>, StoreError>>()?;
        admins.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(admins)
    }

    async fn administrator_audience(&self) -> Result<Vec<AudienceMember>, StoreError> {
        let candidates = self
            .query_admins(Some(&[USERNAME]))
            .await?
            .iter()
            .map(|item| string(item, USERNAME).map(|name| Key::user(&name)))
            .collect::<Result<BTreeSet<Key>, StoreError>>()?;
        let mut members = Vec::with_capacity(candidates.len());
        for item in self.batch_get(candidates).await? {
            let member = audience_member(&item)?;
            // The index is eventually consistent; the (consistent) user item decides.
            if member.user.profile.is_admin {
                members.push(member);
            }
        }
        members.sort_by(|a, b| a.user.username.cmp(&b.user.username));
        Ok(members)
    }

    async fn recipients(&self, users: &[Username]) -> Result<Vec<AudienceMember>, StoreError> {
        let keys: BTreeSet<Key> = users.iter().map(|u| Key::user(u.as_str())).collect();
        let mut found = HashMap::with_capacity(keys.len());
        for item in self.batch_get(keys).await? {
            let member = audience_member(&item)?;
            found.insert(member.user.username.clone(), member);
        }
        Ok(users
            .iter()
            .filter_map(|user| found.get(user).cloned())
            .collect())
    }
}

/// A user item as an audience member with their personal settings (no product settings).
fn audience_member(item: &Item) -> Result<AudienceMember, StoreError> {
    Ok(AudienceMember {
        user: user_from_item(item)?,
        personal: parse_settings(&string(item, PERSONAL)?)?,
        product_settings: None,
    })
}
