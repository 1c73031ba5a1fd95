//! The catalog (SPEC §2.4): what interactions point at. It supplies the price
//! and category signal; interactions whose target is not in it still count.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::validation::{check_text, ValidationErrors};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogItem {
    pub target_id: String,
    pub target_type: String,
    pub category: String,
    pub price: f64,
    #[serde(default)]
    pub subcategory: Option<String>,
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub topics: Vec<String>,
}

impl CatalogItem {
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        check_text(&mut errors, "target_id", Some(&self.target_id), 256);
        check_text(&mut errors, "target_type", Some(&self.target_type), 256);
        check_text(&mut errors, "category", Some(&self.category), 128);
        if !self.price.is_finite() || self.price <= 0.0 {
            errors.push("price", "must be a finite number above 0");
        }
        for (i, t) in self.topics.iter().enumerate() {
            if t.trim().is_empty() {
                errors.push(format!("topics[{i}]"), "must not be empty");
            }
        }
        errors.into_result(|| ())
    }

    /// The interest tags of this item: its category, then its topics, each
    /// once, in that order.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::with_capacity(1 + self.topics.len());
        std::iter::once(self.category.as_str())
            .chain(self.topics.iter().map(String::as_str))
            .filter(move |t| {
                if seen.contains(t) {
                    false
                } else {
                    seen.push(t);
                    true
                }
            })
    }

    /// Parses `;`-separated topics as CSV files carry them.
    pub fn split_topics(text: &str) -> Vec<String> {
        text.split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A validated catalog, indexed by target id. Serialised as its item list
/// (model artifacts carry it) and validated again when read back.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(into = "Vec<CatalogItem>", try_from = "Vec<CatalogItem>")]
pub struct Catalog {
    items: Vec<CatalogItem>,
    by_id: HashMap<String, usize>,
}

impl Catalog {
    /// Builds the index. Target ids must be unique: the id alone identifies a
    /// target, so two rows for one id would give it two prices.
    pub fn new(items: Vec<CatalogItem>) -> Result<Catalog, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let mut by_id = HashMap::with_capacity(items.len());
        for (row, item) in items.iter().enumerate() {
            if let Err(e) = item.validate() {
                for fe in e.0 {
                    errors.push(format!("row {row}: {}", fe.field), fe.message);
                }
            }
            if by_id.insert(item.target_id.clone(), row).is_some() {
                errors.push(
                    format!("row {row}: target_id"),
                    format!("duplicate target id {:?}", item.target_id),
                );
            }
        }
        errors.into_result(|| Catalog { items, by_id })
    }

    pub fn items(&self) -> &[CatalogItem] {
        &self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn index_of(&self, target_id: &str) -> Option<usize> {
        self.by_id.get(target_id).copied()
    }

    pub fn get(&self, target_id: &str) -> Option<&CatalogItem> {
        self.index_of(target_id).map(|i| &self.items[i])
    }
}

impl PartialEq for Catalog {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

impl From<Catalog> for Vec<CatalogItem> {
    fn from(c: Catalog) -> Self {
        c.items
    }
}

impl TryFrom<Vec<CatalogItem>> for Catalog {
    type Error = ValidationErrors;
    fn try_from(items: Vec<CatalogItem>) -> Result<Self, Self::Error> {
        Catalog::new(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn item(id: &str, category: &str, price: f64, topics: &[&str]) -> CatalogItem {
        CatalogItem {
            target_id: id.into(),
            target_type: "product".into(),
            category: category.into(),
            price,
            subcategory: None,
            brand: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn tags_are_category_then_unique_topics() {
        let i = item("a", "baby", 3.0, &["outdoor", "baby", "outdoor", "eco"]);
        assert_eq!(i.tags().collect::<Vec<_>>(), ["baby", "outdoor", "eco"]);
        assert_eq!(CatalogItem::split_topics(" a; b;;c "), ["a", "b", "c"]);
    }

    #[test]
    fn catalog_rejects_bad_rows_and_duplicate_ids_naming_them() {
        let err = Catalog::new(vec![
            item("a", "baby", 3.0, &[]),
            item("a", "toys", 4.0, &[]),
            item("b", "", -1.0, &[""]),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains("row 1: target_id: duplicate target id \"a\""),
            "{text}"
        );
        assert!(
            text.contains("row 2: category: must not be empty"),
            "{text}"
        );
        assert!(text.contains("row 2: price"), "{text}");
        assert!(text.contains("row 2: topics[0]"), "{text}");
        let ok = Catalog::new(vec![item("a", "baby", 3.0, &[])]).expect("valid");
        assert_eq!(ok.get("a").map(|i| i.price), Some(3.0));
        assert!(ok.get("zzz").is_none());
    }
}
