//! The directory port: users, product types, products and their members.

use super::StoreError;
use crate::domain::{
    AudienceMember, NotificationSettings, Product, ProductAccess, ProductAudience, ProductType,
    ResourceId, User, UserProfile, Username, ViewableProduct,
};
use async_trait::async_trait;

/// Whether a user write created the user or updated one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserWrite {
    /// A new user, whose personal settings are a copy of the template.
    Created,
    /// An existing user; their settings are untouched.
    Updated,
}

/// The directory the platform keeps: users, product types, products, members.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Creates or updates a user. A new user's personal settings become a copy of `template`,
    /// atomically, so concurrent writes cannot lose the copy; an existing user's are kept.
    /// A profile that names a `slack_user_id` sets it; one that does not (a directory sync
    /// does not know it) keeps the one stored while `slack_email` is unchanged, and clears it
    /// when `slack_email` changes (it was found for another address).
    async fn put_user(
        &self,
        user: &Username,
        profile: &UserProfile,
        template: &NotificationSettings,
    ) -> Result<UserWrite, StoreError>;
    /// A user, `None` when unknown.
    async fn user(&self, user: &Username) -> Result<Option<User>, StoreError>;
    /// Removes a user with their settings and memberships; `false` when unknown.
    async fn delete_user(&self, user: &Username) -> Result<bool, StoreError>;
    /// Records the Slack member id found for a user's `slack_email` (`users.lookupByEmail`),
    /// so the lookup is done once; the rest of the profile is untouched. `false` when the
    /// user is unknown (nothing is created) or their `slack_email` is no longer the one the id
    /// was found for (a conditional write, so a lookup racing an address change stores nothing).
    async fn set_slack_user_id(
        &self,
        user: &Username,
        slack_email: &str,
        slack_user_id: &str,
    ) -> Result<bool, StoreError>;

    /// Creates or replaces a product type; `true` when it was created.
    async fn put_product_type(&self, product_type: &ProductType) -> Result<bool, StoreError>;
    /// A product type, `None` when unknown.
    async fn product_type(&self, id: &ResourceId) -> Result<Option<ProductType>, StoreError>;
    /// Removes a product type and its memberships; `false` when unknown. `Conflict` while
    /// products still belong to it.
    async fn delete_product_type(&self, id: &ResourceId) -> Result<bool, StoreError>;
    /// Makes a user a member of a product type; `true` when they were not one already.
    /// `NotFound` when either does not exist.
    async fn put_product_type_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError>;
    /// Ends a membership; `false` when there was none.
    async fn delete_product_type_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError>;

    /// Creates or replaces a product; `true` when it was created. `NotFound` when its product
    /// type does not exist.
    async fn put_product(&self, product: &Product) -> Result<bool, StoreError>;
    /// A product, `None` when unknown.
    async fn product(&self, id: &ResourceId) -> Result<Option<Product>, StoreError>;
    /// Removes a product with its memberships and every user's settings for it; `false` when
    /// unknown.
    async fn delete_product(&self, id: &ResourceId) -> Result<bool, StoreError>;
    /// Makes a user a member of a product; `true` when they were not one already.
    /// `NotFound` when either does not exist.
    async fn put_product_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError>;
    /// Ends a membership; `false` when there was none.
    async fn delete_product_member(
        &self,
        id: &ResourceId,
        user: &Username,
    ) -> Result<bool, StoreError>;

    /// What decides whether `user` may view `product`. `NotFound` when the product does not
    /// exist; an unknown user has no access.
    async fn product_access(
        &self,
        user: &Username,
        product: &ResourceId,
    ) -> Result<ProductAccess, StoreError>;
    /// Every product `user` may view (as a member of it or of its product type, or as an
    /// administrator: every product), with why and whether they have settings for it, in
    /// [`ViewableProduct::sort`] order. `None` when the user is unknown. A number of backend
    /// requests that does not grow one per product.
    async fn viewable_products(
        &self,
        user: &Username,
    ) -> Result<Option<Vec<ViewableProduct>>, StoreError>;
    /// Everyone who may view a product, with their personal and per-product settings, in a
    /// number of backend requests that does not grow one per user. `None` when the product
    /// does not exist.
    async fn product_audience(
        &self,
        product: &ResourceId,
    ) -> Result<Option<ProductAudience>, StoreError>;
    /// Every administrator (system-scope alerts go to them).
    async fn administrators(&self) -> Result<Vec<User>, StoreError>;
    /// Every administrator with their personal settings (broadcast events with no product go
    /// to them), sorted by username.
    async fn administrator_audience(&self) -> Result<Vec<AudienceMember>, StoreError>;
    /// The users named, with their personal settings, in the order given; unknown names are
    /// skipped. A number of backend requests that does not grow one per user.
    async fn recipients(&self, users: &[Username]) -> Result<Vec<AudienceMember>, StoreError>;
}
