//! OpenAI's cursor-paginated list shape.

use serde::{Deserialize, Serialize};

/// `{"object":"list","data":[..],"first_id","last_id","has_more"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage<T> {
    pub object: String,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

impl<T> ListPage<T> {
    /// Builds a page; `id_of` names each item for `first_id`/`last_id`.
    pub fn new(data: Vec<T>, has_more: bool, id_of: impl Fn(&T) -> &str) -> Self {
        ListPage {
            object: "list".to_string(),
            first_id: data.first().map(|t| id_of(t).to_string()),
            last_id: data.last().map(|t| id_of(t).to_string()),
            data,
            has_more,
        }
    }
}

/// Sort order by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListOrder {
    Asc,
    #[default]
    Desc,
}

/// A validated list request. `after` is a public object ID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub after: Option<String>,
    pub limit: u32,
    pub order: ListOrder,
    /// Files only: restrict to one purpose.
    pub purpose: Option<crate::FilePurpose>,
}
