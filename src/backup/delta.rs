//! One delta round over one container: pages, removals, the token committed with the run, and the
//! resync that an expired token asks for (re-list without re-downloading unchanged content).

use std::collections::HashSet;
use std::future::Future;

use backhome_graph::{Call, ErrorClass};
use backhome_store::ObjectId;
use serde::de::DeserializeOwned;

use super::context::{Ctx, RunError};

/// Something a delta page lists, with a Graph id.
pub trait HasId {
    /// The Graph id.
    fn graph_id(&self) -> &str;
}

impl HasId for backhome_graph::models::Message {
    fn graph_id(&self) -> &str {
        &self.meta.id
    }
}
impl HasId for backhome_graph::models::Contact {
    fn graph_id(&self) -> &str {
        &self.meta.id
    }
}
impl HasId for backhome_graph::models::DriveItem {
    fn graph_id(&self) -> &str {
        &self.id
    }
}
impl HasId for serde_json::Value {
    fn graph_id(&self) -> &str {
        self.get("id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    }
}

/// Whether a Graph error must stop the whole run rather than one container.
#[must_use]
pub fn is_fatal(e: &backhome_graph::Error) -> bool {
    use backhome_graph::Error as E;
    matches!(
        e,
        E::Credential(_) | E::Auth(_) | E::Config(_) | E::ConsentMissing { .. }
    )
}

/// One delta round of one container.
pub struct Round<'a> {
    /// The run.
    pub ctx: &'a Ctx,
    /// The protected object.
    pub object: ObjectId,
    /// The token's scope key, e.g. `mail:<folder id>`.
    pub scope: &'a str,
    /// The delta request without a token.
    pub start: Call,
    /// Where the container is, for errors.
    pub label: &'a str,
}

impl Round<'_> {
    /// Runs the round (see [`Round::list`]) and records the new token with the run.
    ///
    /// # Errors
    /// Run-stopping errors only; a container that fails is recorded as an item error.
    pub async fn run<T, FI, FutI, FR, FutR, FP, FutP>(
        self,
        items: FI,
        removed: FR,
        prune: FP,
    ) -> Result<(), RunError>
    where
        T: DeserializeOwned + HasId,
        FI: Fn(Vec<T>) -> FutI,
        FutI: Future<Output = Result<usize, RunError>>,
        FR: Fn(Vec<String>) -> FutR,
        FutR: Future<Output = Result<(), RunError>>,
        FP: FnOnce(HashSet<String>) -> FutP,
        FutP: Future<Output = Result<(), RunError>>,
    {
        let (ctx, obj, scope) = (self.ctx, self.object, self.scope.to_owned());
        if let Some(link) = self.list(items, removed, prune).await? {
            ctx.w(move |w| w.set_delta_token(obj, &scope, &link))
                .await?;
        }
        Ok(())
    }

    /// Lists the round: `items` gets each page's new or changed items (and answers how many of them
    /// failed; a round with failures keeps its old token so they are retried), `removed` the ids Graph
    /// marked removed; after a full listing (first run or resync), `prune` gets every id listed
    /// (none when the repository holds nothing yet, see [`Ctx::may_hold_items`]).
    ///
    /// # Errors
    /// Run-stopping errors only; a container that fails is recorded as an item error.
    /// Answers the token to record once what was listed is safely stored (`None`: keep the old one).
    pub async fn list<T, FI, FutI, FR, FutR, FP, FutP>(
        self,
        items: FI,
        removed: FR,
        prune: FP,
    ) -> Result<Option<String>, RunError>
    where
        T: DeserializeOwned + HasId,
        FI: Fn(Vec<T>) -> FutI,
        FutI: Future<Output = Result<usize, RunError>>,
        FR: Fn(Vec<String>) -> FutR,
        FutR: Future<Output = Result<(), RunError>>,
        FP: FnOnce(HashSet<String>) -> FutP,
        FutP: Future<Output = Result<(), RunError>>,
    {
        let (obj, scope) = (self.object, self.scope.to_owned());
        let token = self.ctx.w(move |w| w.delta_token(obj, &scope)).await?;
        let mut full = token.is_none();
        let mut call = token.map_or_else(|| self.start.clone(), |t| self.start.follow(t));
        let mut seen: HashSet<String> = HashSet::new();
        let mut resynced = false;
        let mut failed = 0usize;
        loop {
            self.ctx.check_cancel()?;
            let page = match self.ctx.client.delta_page::<T>(call.clone()).await {
                Ok(p) => p,
                Err(e) if matches!(e.class(), ErrorClass::Resync) && !resynced => {
                    tracing::info!(container = self.label, "delta token expired; listing again");
                    resynced = true;
                    full = true;
                    seen.clear();
                    call = self.start.clone();
                    continue;
                }
                Err(e) if is_fatal(&e) => return Err(e.into()),
                Err(e) => {
                    self.ctx
                        .item_error(self.label, format!("could not list changes: {e}"));
                    return Ok(None);
                }
            };
            // Only a repository that may hold items has anything to prune; a first run (not a
            // resumed one, whose stored items may since have been deleted) keeps no list of ids,
            // so its memory does not grow with the container.
            if full && self.ctx.may_hold_items() {
                seen.extend(page.items.iter().map(|i| i.graph_id().to_owned()));
            }
            if !page.removed.is_empty() {
                removed(page.removed.into_iter().map(|r| r.id).collect()).await?;
            }
            failed += items(page.items).await?;
            if let Some(next) = page.next_link {
                call = self.start.follow(next);
                continue;
            }
            if full {
                prune(seen).await?;
            }
            if failed > 0 {
                // Keep the old token: the next run lists these changes again and retries the failures.
                return Ok(None);
            }
            return Ok(page.delta_link);
        }
    }
}
