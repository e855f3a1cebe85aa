//! IAM's `Marker`/`MaxItems`/`IsTruncated` pagination (IAM API Reference, "Common
//! Parameters" of the `List*` actions): `MaxItems` 1–1000
//! (default 100); the marker is opaque (the sort key of the last item returned, base64url),
//! so it never repeats while a listing advances.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::check::Check;
use super::errors::invalid_input;
use crate::error::IamError;

pub(crate) const DEFAULT_MAX_ITEMS: usize = 100;

/// The page a request asks for.
pub(crate) struct Page {
    pub(crate) max_items: usize,
    /// Items with a sort key strictly greater than this come next.
    pub(crate) after: Option<String>,
}

impl Page {
    /// The page of a typed input's `MaxItems` and `Marker`.
    pub(crate) fn new(max: Option<i64>, marker: Option<&str>) -> Result<Page, IamError> {
        let mut check = Check::new();
        check.range("MaxItems", max, 1, 1000);
        check.length("Marker", marker, 1, 320);
        check.finish()?;
        let after = match marker {
            None => None,
            Some(m) => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(m.as_bytes())
                    .map_err(|_| invalid_input::<IamError>("Invalid Marker."))?;
                Some(
                    String::from_utf8(bytes)
                        .map_err(|_| invalid_input::<IamError>("Invalid Marker."))?,
                )
            }
        };
        Ok(Page {
            max_items: max.map_or(DEFAULT_MAX_ITEMS, |m| m as usize),
            after,
        })
    }

    /// Picks this page out of `items` (any order; sorted here by `key`). Returns the page and
    /// the marker of the next one.
    pub(crate) fn apply<T>(
        &self,
        mut items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        let mut keyed: Vec<(String, T)> = items.drain(..).map(|t| (key(&t), t)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rest = keyed
            .into_iter()
            .filter(|(k, _)| self.after.as_ref().is_none_or(|a| k > a))
            .peekable();
        let mut page = Vec::new();
        let mut last = None;
        while page.len() < self.max_items {
            match rest.next() {
                Some((k, t)) => {
                    last = Some(k);
                    page.push(t);
                }
                None => break,
            }
        }
        let next = match (rest.peek(), last) {
            (Some(_), Some(k)) => Some(URL_SAFE_NO_PAD.encode(k.as_bytes())),
            _ => None,
        };
        (page, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_advance_without_repeating_markers() {
        let page = Page {
            max_items: 2,
            after: None,
        };
        let items: Vec<String> = ["c", "a", "b", "e", "d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (p1, m1) = page.apply(items.clone(), |s| s.clone());
        assert_eq!(p1, vec!["a", "b"]);
        let m1 = m1.unwrap_or_default();
        let page2 = Page::new(Some(2), Some(&m1)).ok();
        let (p2, m2) = page2
            .as_ref()
            .map(|p| p.apply(items.clone(), |s| s.clone()))
            .unwrap_or_default();
        assert_eq!(p2, vec!["c", "d"]);
        assert_ne!(m2.as_deref(), Some(m1.as_str()));
        let (p3, m3) = Page::new(None, m2.as_deref())
            .map(|p| p.apply(items, |s| s.clone()))
            .unwrap_or_default();
        assert_eq!(p3, vec!["e"]);
        assert!(m3.is_none());
    }

    #[test]
    fn max_items_out_of_range_is_a_validation_error() {
        assert!(Page::new(Some(0), None).is_err());
        assert!(Page::new(None, Some("%%")).is_err());
    }
}
