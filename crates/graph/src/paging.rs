//! `@odata.nextLink` paging and delta queries.

use futures_util::Stream;
use futures_util::stream::{self, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::Call;
use crate::client::{BodyFail, Client, parse_json};
use crate::error::Error;

/// One page of a collection.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The next page, if any (absolute URL on the Graph host).
    pub next_link: Option<String>,
    /// A delta link, when this is the last page of a delta round.
    pub delta_link: Option<String>,
}

#[derive(Deserialize)]
struct RawPage<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

/// An item removed from a delta collection (`@removed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Id of the removed item.
    pub id: String,
    /// `deleted` (gone) or `changed` (moved out of scope, e.g. to another folder).
    pub reason: Option<String>,
}

/// One page of a delta round.
///
/// Drive items deleted in a drive delta come as items with a `deleted` facet (that is how
/// OneDrive reports them); `removed` holds the entries Graph marks with `@removed`.
#[derive(Clone, Debug)]
pub struct DeltaPage<T> {
    /// New or changed items.
    pub items: Vec<T>,
    /// Items marked `@removed`.
    pub removed: Vec<Removed>,
    /// Link to the next page of this round.
    pub next_link: Option<String>,
    /// Link to start the next round with (present on the last page).
    pub delta_link: Option<String>,
}

impl<T> DeltaPage<T> {
    /// Whether this is the last page of the round.
    #[must_use]
    pub fn is_last(&self) -> bool {
        self.next_link.is_none()
    }
}

impl Client {
    /// Fetches one page. To continue, call again with `call.follow(next_link)`.
    pub async fn page<T: DeserializeOwned>(&self, call: Call) -> Result<Page<T>, Error> {
        let raw: RawPage<T> = self.run(&call, &[], |_, _, body| parse_json(&body)).await?;
        for link in raw.next_link.iter().chain(&raw.delta_link) {
            self.check_link(link)?;
        }
        Ok(Page {
            items: raw.value,
            next_link: raw.next_link,
            delta_link: raw.delta_link,
        })
    }

    /// All pages, following `@odata.nextLink` with the first call's settings (resource key,
    /// `Prefer`, headers). Links to another host end the stream with [`Error::ForeignLink`].
    pub fn pages<T: DeserializeOwned + Send + 'static>(
        &self,
        call: Call,
    ) -> impl Stream<Item = Result<Page<T>, Error>> + Send + 'static {
        let client = self.clone();
        stream::try_unfold(Some(call), move |next| {
            let client = client.clone();
            async move {
                let Some(call) = next else {
                    return Ok(None);
                };
                let page: Page<T> = client.page(call.clone()).await?;
                let following = page
                    .next_link
                    .as_ref()
                    .map(|link| call.follow(link.clone()));
                Ok(Some((page, following)))
            }
        })
    }

    /// All items of all pages, as a stream.
    pub fn items<T: DeserializeOwned + Send + 'static>(
        &self,
        call: Call,
    ) -> impl Stream<Item = Result<T, Error>> + Send + 'static {
        self.pages::<T>(call)
            .map_ok(|page| stream::iter(page.items.into_iter().map(Ok)))
            .try_flatten()
    }

    /// Fetches one page of a delta round: the first call is the delta path (or a stored delta
    /// link), then `next_link`s until a page carries `delta_link`. An expired state is
    /// [`Error::Resync`].
    pub async fn delta_page<T: DeserializeOwned>(&self, call: Call) -> Result<DeltaPage<T>, Error> {
        let page = self
            .run(&call, &[], |_, _, body| {
                let raw: RawPage<Value> = parse_json(&body)?;
                let mut items = Vec::with_capacity(raw.value.len());
                let mut removed = Vec::new();
                for entry in raw.value {
                    if let Some(r) = entry.get("@removed") {
                        let id = entry
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        let reason = r.get("reason").and_then(Value::as_str).map(str::to_owned);
                        removed.push(Removed { id, reason });
                    } else {
                        let item = T::deserialize(&entry).map_err(|e| {
                            BodyFail::Fatal(Error::Malformed {
                                what: "delta item".into(),
                                detail: e.to_string(),
                            })
                        })?;
                        items.push(item);
                    }
                }
                Ok(DeltaPage {
                    items,
                    removed,
                    next_link: raw.next_link,
                    delta_link: raw.delta_link,
                })
            })
            .await?;
        for link in page.next_link.iter().chain(&page.delta_link) {
            self.check_link(link)?;
        }
        Ok(page)
    }

    fn check_link(&self, link: &str) -> Result<(), Error> {
        let url = url::Url::parse(link).map_err(|e| Error::Malformed {
            what: "@odata link".into(),
            detail: e.to_string(),
        })?;
        self.check_graph_host(&url)
    }
}
