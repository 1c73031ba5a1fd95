//! The catalog (SPEC §2.4): what interactions point at. It supplies the price
//! and category signal; interactions whose target is not in it still count.
//!
//! Real catalogs are incomplete: items that never sold have no price, some
//! have none of the categories a shop uses. Such an item still says what it
//! is (category and topics) or what it costs, so a missing or unusable price
//! or category makes it an item without that signal, not an invalid one.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::validation::{check_text, ProblemSummary, ValidationErrors};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogItem {
    pub target_id: String,
    pub target_type: String,
    /// `None` when the source has no category for the item.
    #[serde(default)]
    pub category: Option<String>,
    /// `None` means unknown (SPEC §2.4): the item gives no price signal.
    #[serde(default)]
    pub price: Option<f64>,
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
        if let Some(category) = &self.category {
            check_text(&mut errors, "category", Some(category), 128);
        }
        if let Some(price) = self.price {
            if !Self::is_usable_price(price) {
                errors.push("price", "must be a finite number above 0 when given");
            }
        }
        for (i, t) in self.topics.iter().enumerate() {
            if t.trim().is_empty() {
                errors.push(format!("topics[{i}]"), "must not be empty");
            }
        }
        errors.into_result(|| ())
    }

    /// Whether a price can be used as one: finite and above zero. A zero or
    /// negative catalog price is a placeholder, not what the item costs.
    pub fn is_usable_price(price: f64) -> bool {
        price.is_finite() && price > 0.0
    }

    /// The interest tags of this item: its category, then its topics, each
    /// once, in that order.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::with_capacity(1 + self.topics.len());
        self.category
            .as_deref()
            .into_iter()
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

    /// Builds a catalog from the rows of a real file (SPEC §2.4a), keeping
    /// what can be used: an unusable price or category becomes unknown (the
    /// item keeps its other signal; noted in `notes`), blank topics are
    /// dropped, and a row without a valid target id or type, or repeating an
    /// earlier row's target id (the first is kept), is skipped (`skipped`).
    pub fn from_rows(
        rows: impl IntoIterator<Item = (usize, CatalogItem)>,
        skipped: &mut ProblemSummary,
        notes: &mut ProblemSummary,
    ) -> Catalog {
        let mut items = Vec::new();
        let mut by_id = HashMap::new();
        for (row, mut item) in rows {
            let mut row_notes: Vec<(&str, &str)> = Vec::new();
            match item.price {
                None => row_notes.push(("price", "missing: taken as unknown")),
                Some(p) if !CatalogItem::is_usable_price(p) => {
                    row_notes.push(("price", "not above 0: taken as unknown"));
                    item.price = None;
                }
                Some(_) => {}
            }
            if item.category.as_deref().is_none_or(|c| c.trim().is_empty()) {
                row_notes.push(("category", "missing: the item gives no category signal"));
                item.category = None;
            }
            item.topics.retain(|t| !t.trim().is_empty());
            if let Err(errors) = item.validate() {
                skipped.add(row, &errors);
                continue;
            }
            if by_id.contains_key(&item.target_id) {
                skipped.add_one(
                    row,
                    "target_id",
                    "repeats an earlier row's: the first is kept",
                );
                continue;
            }
            for (field, message) in row_notes {
                notes.add_one(row, field, message);
            }
            by_id.insert(item.target_id.clone(), items.len());
            items.push(item);
        }
        Catalog { items, by_id }
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
            category: Some(category.into()),
            price: Some(price),
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
        assert_eq!(ok.get("a").and_then(|i| i.price), Some(3.0));
        assert!(ok.get("zzz").is_none());
    }

    #[test]
    fn rows_of_a_real_file_keep_what_can_be_used() {
        let mut no_price = item("a", "baby", 1.0, &["outdoor", " "]);
        no_price.price = None;
        let mut rows = vec![
            no_price,
            item("b", "toys", 0.0, &[]),
            item("c", " ", 5.0, &[]),
            item("", "toys", 5.0, &[]),
            item("b", "garden", 7.0, &[]),
        ];
        rows[2].category = Some(" ".into());
        let (mut skipped, mut notes) = (ProblemSummary::new(), ProblemSummary::new());
        let catalog = Catalog::from_rows(
            rows.into_iter().enumerate().map(|(i, item)| (i + 1, item)),
            &mut skipped,
            &mut notes,
        );
        let ids: Vec<&str> = catalog
            .items()
            .iter()
            .map(|i| i.target_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let a = catalog.get("a").expect("a");
        assert_eq!(
            (a.price, &a.topics[..]),
            (None, &["outdoor".to_owned()][..])
        );
        assert_eq!(
            catalog.get("b").and_then(|b| b.price),
            None,
            "0 is not a price"
        );
        assert_eq!(
            catalog.get("b").and_then(|b| b.category.as_deref()),
            Some("toys")
        );
        assert_eq!(catalog.get("c").and_then(|c| c.category.as_deref()), None);
        let skipped: Vec<(&str, usize, &[usize])> = skipped
            .groups()
            .iter()
            .map(|g| (g.field.as_str(), g.count, &g.examples[..]))
            .collect();
        assert_eq!(
            skipped,
            [("target_id", 1, &[4][..]), ("target_id", 1, &[5][..])]
        );
        let notes: Vec<(&str, usize)> = notes
            .groups()
            .iter()
            .map(|g| (g.field.as_str(), g.count))
            .collect();
        // notes describe the rows kept
        assert_eq!(notes, [("category", 1), ("price", 1), ("price", 1)]);
    }

    #[test]
    fn items_without_price_or_category_are_valid_and_keep_their_other_signal() {
        let mut no_price = item("a", "baby", 1.0, &["outdoor"]);
        no_price.price = None;
        let mut no_category = item("b", "toys", 4.0, &["eco"]);
        no_category.category = None;
        let catalog = Catalog::new(vec![no_price, no_category]).expect("valid");
        let a = catalog.get("a").expect("a");
        assert_eq!(a.tags().collect::<Vec<_>>(), ["baby", "outdoor"]);
        let b = catalog.get("b").expect("b");
        assert_eq!(
            (b.price, b.tags().collect::<Vec<_>>()),
            (Some(4.0), vec!["eco"])
        );
        let mut zero = item("c", "toys", 0.0, &[]);
        assert!(zero.validate().expect_err("zero price").has_field("price"));
        zero.price = None;
        assert!(zero.validate().is_ok());
    }
}
