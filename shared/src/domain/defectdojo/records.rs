//! DefectDojo's engagements, active findings and risk acceptances as the scheduled checks
//! keep them (see [`ScheduleStore`](crate::ports::ScheduleStore)), from API v2 objects.
//!
//! Each object is turned into the body Herald's own API takes (`PUT /v1/engagements/{id}`,
//! ...) and validated by the same code, so a synced record is one a platform could have
//! written. What Herald cannot keep is listed in [`Records::skipped`] and left out, never
//! guessed:
//! - an engagement's `lead` that is not a synced user becomes no lead;
//! - a finding's product comes from `related_fields.test.engagement.product` (the sync asks
//!   for `related_fields=true`); one without it, or of a product not synced, is left out;
//! - a risk acceptance has no engagement field in DefectDojo: its engagement is the one whose
//!   `risk_acceptance` lists it, and its product that engagement's; one no engagement lists
//!   is left out. Its `expiration_date` is a datetime in UTC; Herald keeps the date.

use crate::domain::checks::{Engagement, Finding, RiskAcceptance};
use crate::domain::directory::Username;
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

use super::resource_id;

/// `/api/v2/engagements/`.
#[derive(Debug, Clone, Deserialize)]
pub struct DojoEngagementRow {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    pub product: u64,
    #[serde(default)]
    pub lead: Option<u64>,
    #[serde(default)]
    pub target_start: Option<String>,
    #[serde(default)]
    pub target_end: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub risk_acceptance: Vec<u64>,
}

/// `/api/v2/findings/?active=true&related_fields=true`.
#[derive(Debug, Clone, Deserialize)]
pub struct DojoFindingRow {
    pub id: u64,
    pub title: String,
    pub severity: String,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub verified: bool,
    #[serde(default)]
    pub sla_expiration_date: Option<String>,
    /// Only `test.engagement.product.id` is read (and kept) of it.
    #[serde(default)]
    pub related_fields: Option<DojoRelated>,
}

/// The part of a finding's `related_fields` that names its product.
#[derive(Debug, Clone, Deserialize)]
pub struct DojoRelated {
    #[serde(default)]
    test: Option<RelatedTest>,
}

#[derive(Debug, Clone, Deserialize)]
struct RelatedTest {
    #[serde(default)]
    engagement: Option<RelatedEngagement>,
}

#[derive(Debug, Clone, Deserialize)]
struct RelatedEngagement {
    #[serde(default)]
    product: Option<RelatedProduct>,
}

#[derive(Debug, Clone, Deserialize)]
struct RelatedProduct {
    id: u64,
}

impl DojoFindingRow {
    /// The product, from `related_fields.test.engagement.product.id`.
    pub fn product(&self) -> Option<u64> {
        let test = self.related_fields.as_ref()?.test.as_ref()?;
        Some(test.engagement.as_ref()?.product.as_ref()?.id)
    }
}

/// `/api/v2/risk_acceptance/`.
#[derive(Debug, Clone, Deserialize)]
pub struct DojoRiskAcceptanceRow {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub expiration_date: Option<String>,
    #[serde(default)]
    pub accepted_findings: Vec<u64>,
}

/// Turns DefectDojo's rows into Herald's records one at a time, as a sync reads them page by
/// page: engagements first (a risk acceptance's engagement is the one that lists it), then
/// findings and risk acceptances. `Err` is the sentence saying why a row is left out.
#[derive(Debug)]
pub struct RecordReader<'a> {
    /// DefectDojo's user ids → the synced usernames.
    users: &'a BTreeMap<u64, Username>,
    /// The ids of the synced products.
    products: &'a BTreeSet<u64>,
    /// Risk acceptance → (engagement, product), from the engagements kept so far.
    engagement_of: BTreeMap<u64, (u64, u64)>,
}

impl<'a> RecordReader<'a> {
    pub fn new(users: &'a BTreeMap<u64, Username>, products: &'a BTreeSet<u64>) -> Self {
        Self {
            users,
            products,
            engagement_of: BTreeMap::new(),
        }
    }

    pub fn engagement(&mut self, row: &DojoEngagementRow) -> Result<Engagement, String> {
        if !self.products.contains(&row.product) {
            return Err(format!(
                "engagement {}: its product {} was not synced",
                row.id, row.product
            ));
        }
        let lead = row.lead.and_then(|id| self.users.get(&id));
        let body = json!({
            "product_id": resource_id(row.product).as_str(),
            "name": row.name.as_deref().filter(|n| !n.trim().is_empty())
                .map_or_else(|| format!("Engagement {}", row.id), |n| n.trim().to_owned()),
            "lead": lead.map(Username::as_str),
            "target_start": row.target_start,
            "target_end": row.target_end,
            "status": row.status,
        });
        let engagement = Engagement::from_request(&resource_id(row.id), &body)
            .map_err(|e| format!("engagement {}: {e}", row.id))?;
        // Only a kept engagement can hold risk acceptances.
        for acceptance in &row.risk_acceptance {
            self.engagement_of
                .insert(*acceptance, (row.id, row.product));
        }
        Ok(engagement)
    }

    pub fn finding(&self, row: &DojoFindingRow) -> Result<Finding, String> {
        let Some(product) = row.product().filter(|p| self.products.contains(p)) else {
            return Err(format!(
                "finding {}: its product is not known (it is not in `related_fields`, or was not synced)",
                row.id
            ));
        };
        let body = json!({
            "product_id": resource_id(product).as_str(),
            "title": row.title,
            "severity": row.severity,
            "active": row.active,
            "verified": row.verified,
            "sla_expiration_date": row.sla_expiration_date,
        });
        Finding::from_request(&resource_id(row.id), &body)
            .map_err(|e| format!("finding {}: {e}", row.id))
    }

    pub fn risk_acceptance(&self, row: &DojoRiskAcceptanceRow) -> Result<RiskAcceptance, String> {
        let Some((engagement, product)) = self.engagement_of.get(&row.id) else {
            return Err(format!(
                "risk acceptance {}: no synced engagement lists it",
                row.id
            ));
        };
        let body = json!({
            "product_id": resource_id(*product).as_str(),
            "engagement_id": resource_id(*engagement).as_str(),
            "name": row.name.as_deref().filter(|n| !n.trim().is_empty())
                .map_or_else(|| format!("Risk acceptance {}", row.id), |n| n.trim().to_owned()),
            // A datetime in UTC: its date.
            "expiration_date": row.expiration_date.as_deref().map(|d| d.get(..10).unwrap_or(d)),
            "accepted_findings": row.accepted_findings.iter()
                .map(|f| resource_id(*f).as_str().to_owned()).collect::<Vec<_>>(),
        });
        RiskAcceptance::from_request(&resource_id(row.id), &body)
            .map_err(|e| format!("risk acceptance {}: {e}", row.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    fn rows<T: DeserializeOwned>(generation: &str, file: &str) -> Vec<T> {
        super::super::fixture(generation, file)
    }

    /// DefectDojo's rows, as one read answers them.
    #[derive(Default)]
    struct DojoRecords {
        engagements: Vec<DojoEngagementRow>,
        findings: Vec<DojoFindingRow>,
        risk_acceptances: Vec<DojoRiskAcceptanceRow>,
    }

    /// What a [`RecordReader`] makes of them.
    #[derive(Default)]
    struct Records {
        engagements: Vec<Engagement>,
        findings: Vec<Finding>,
        risk_acceptances: Vec<RiskAcceptance>,
        skipped: Vec<String>,
    }

    impl DojoRecords {
        fn to_records(&self, users: &BTreeMap<u64, Username>, products: &BTreeSet<u64>) -> Records {
            let mut reader = RecordReader::new(users, products);
            let mut out = Records::default();
            for row in &self.engagements {
                match reader.engagement(row) {
                    Ok(e) => out.engagements.push(e),
                    Err(why) => out.skipped.push(why),
                }
            }
            for row in &self.findings {
                match reader.finding(row) {
                    Ok(f) => out.findings.push(f),
                    Err(why) => out.skipped.push(why),
                }
            }
            for row in &self.risk_acceptances {
                match reader.risk_acceptance(row) {
                    Ok(r) => out.risk_acceptances.push(r),
                    Err(why) => out.skipped.push(why),
                }
            }
            out
        }
    }

    fn records(generation: &str) -> Records {
        let dojo = DojoRecords {
            engagements: rows(generation, "engagements"),
            findings: rows(generation, "findings_related_fields"),
            risk_acceptances: rows(generation, "risk_acceptance"),
        };
        let users = BTreeMap::from([(2, Username("alice".into()))]);
        dojo.to_records(&users, &BTreeSet::from([7, 8]))
    }

    #[test]
    fn given_both_generations_then_engagements_findings_and_risk_acceptances_carry_over() {
        for generation in ["v3", "v2"] {
            let r = records(generation);
            assert!(r.skipped.is_empty(), "{generation}: {:?}", r.skipped);
            let shop = &r.engagements[0];
            assert_eq!(
                shop.to_json(),
                json!({"id": "12", "product_id": "7", "name": "Shop Q3 pentest",
                       "lead": "alice", "target_start": "2026-07-14",
                       "target_end": "2026-08-14", "status": "In Progress"}),
                "{generation}"
            );
            assert_eq!(r.engagements[1].lead, None, "{generation}");
            let ids: Vec<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
            assert_eq!(ids, ["101", "102", "103", "104"], "{generation}");
            assert_eq!(r.findings[0].product_id.as_str(), "7");
            assert_eq!(r.findings[3].product_id.as_str(), "8");
            let accepted = &r.risk_acceptances[0];
            assert_eq!(
                accepted.to_json(),
                json!({"id": "5", "product_id": "8", "engagement_id": "13",
                       "name": "Accept legacy TLS until migration",
                       "expiration_date": "2026-10-01", "accepted_findings": ["104"]}),
                "{generation}"
            );
        }
    }

    #[test]
    fn given_what_herald_cannot_place_then_it_is_listed_and_left_out() {
        let dojo = DojoRecords {
            engagements: rows("v3", "engagements"),
            findings: rows("v3", "findings"),
            risk_acceptances: rows("v3", "risk_acceptance"),
        };
        let r = dojo.to_records(&BTreeMap::new(), &BTreeSet::from([7]));
        // Without `related_fields` no finding has a product; engagement 13's product is not
        // synced, and so risk acceptance 5 has no engagement.
        assert!(r.findings.is_empty());
        assert_eq!(r.engagements.len(), 1);
        assert_eq!(
            r.engagements[0].lead, None,
            "alice is not a synced user here"
        );
        assert_eq!(r.risk_acceptances.len(), 1);
        let skipped = r.skipped.join("\n");
        assert!(
            skipped.contains("engagement 13: its product 8 was not synced"),
            "{skipped}"
        );
        assert!(
            skipped.contains("finding 101: its product is not known"),
            "{skipped}"
        );
        assert!(
            skipped.contains("risk acceptance 5: no synced engagement lists it"),
            "{skipped}"
        );
    }

    #[test]
    fn given_an_invalid_engagement_then_the_reason_names_the_field() {
        let mut dojo = DojoRecords {
            engagements: rows("v3", "engagements"),
            ..DojoRecords::default()
        };
        dojo.engagements[0].target_end = Some("2026-06-01".into());
        let r = dojo.to_records(&BTreeMap::new(), &BTreeSet::from([7, 8]));
        assert_eq!(r.engagements.len(), 1);
        assert!(
            r.skipped[0].starts_with("engagement 12: target_end"),
            "{:?}",
            r.skipped
        );
    }
}
