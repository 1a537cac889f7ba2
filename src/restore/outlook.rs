//! Calendar events and contacts, recreated from their stored Graph JSON without the properties
//! Graph sets itself; events keep their recurrence and get their attachments back.

use std::collections::HashMap;

use backhome_graph::{Call, ErrorClass, encode_segment};
use backhome_store::NodeKind;
use futures_util::TryStreamExt;
use serde_json::{Value, json};

use super::{Conflict, Item, ItemError, Job, Outcome, RestoreError, Selection};

/// Read-only or server-set properties that a create must not carry.
const READ_ONLY: &[&str] = &[
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "webLink",
    "iCalUId",
    "uid",
    "parentFolderId",
    "calendar",
    "seriesMasterId",
    "occurrenceId",
    "type",
    "isOrganizer",
    "hasAttachments",
    "attachments",
    "originalStart",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "responseStatus",
    "onlineMeetingUrl",
    "onlineMeeting",
    "cancelledOccurrences",
    "exceptionOccurrences",
    "instances",
    "extensions",
    "multiValueExtendedProperties",
    "singleValueExtendedProperties",
    "photo",
];

/// The stored JSON without what Graph sets itself.
pub(crate) fn clean(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.retain(|k, _| {
            !k.starts_with('@') && !k.contains("@odata") && !READ_ONLY.contains(&k.as_str())
        });
    }
    v
}

/// The conflict key of an event: subject and start.
pub(crate) fn event_key(v: &Value) -> String {
    let start = v
        .pointer("/start/dateTime")
        .and_then(Value::as_str)
        .unwrap_or_default();
    format!(
        "{}\u{1}{}",
        v.get("subject").and_then(Value::as_str).unwrap_or_default(),
        start.get(..19).unwrap_or(start)
    )
}

/// The conflict key of a contact: display name and first e-mail address.
pub(crate) fn contact_key(v: &Value) -> String {
    format!(
        "{}\u{1}{}",
        v.get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        v.pointer("/emailAddresses/0/address")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase()
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Event,
    Contact,
}

struct Target<'a> {
    job: &'a Job,
    base: String,
    kind: Kind,
    /// Container name (lower case, `None`: the default one) → collection URL.
    containers: HashMap<Option<String>, String>,
    listed: Option<HashMap<String, String>>,
    /// Collection URL → conflict key → item ids.
    existing: HashMap<String, HashMap<String, Vec<String>>>,
}

/// Restores one calendar selection.
pub(super) async fn restore_events(job: &Job, s: &Selection) -> Result<(), RestoreError> {
    restore(job, s, Kind::Event).await
}

/// Restores one contacts selection.
pub(super) async fn restore_contacts(job: &Job, s: &Selection) -> Result<(), RestoreError> {
    restore(job, s, Kind::Contact).await
}

async fn restore(job: &Job, s: &Selection, kind: Kind) -> Result<(), RestoreError> {
    let mut t = Target {
        job,
        base: job.account_base(&s.object),
        kind,
        containers: HashMap::new(),
        listed: None,
        existing: HashMap::new(),
    };
    for item in &s.items {
        if job.cancelled() {
            return Err(RestoreError::Cancelled);
        }
        let result = match (item.version.kind, kind) {
            (NodeKind::Event, Kind::Event) | (NodeKind::Contact, Kind::Contact) => {
                t.item(item).await
            }
            (other, _) => Err(ItemError::Other(format!(
                "a {} cannot be restored here",
                other.as_str()
            ))),
        };
        job.record(&item.path, result)?;
    }
    Ok(())
}

impl Target<'_> {
    fn list_url(&self) -> String {
        match self.kind {
            Kind::Event => format!("{}/calendars?$top=100", self.base),
            Kind::Contact => format!("{}/contactFolders?$top=100", self.base),
        }
    }

    /// The collection URL items of `item` are created in.
    async fn collection(&mut self, item: &Item) -> Result<String, ItemError> {
        let default_container = item
            .folder_ids
            .last()
            .is_none_or(|id| id == "contacts:default");
        let name: Option<String> = match (&self.job.req.target_folder, default_container) {
            (Some(f), _) => Some(f.clone()),
            (None, true) => None,
            (None, false) => item.folders.last().cloned(),
        };
        let key = name.as_ref().map(|n| n.to_lowercase());
        if let Some(url) = self.containers.get(&key) {
            return Ok(url.clone());
        }
        let url = match &name {
            None => match self.kind {
                Kind::Event if self.base.starts_with("/groups/") => {
                    format!("{}/calendar/events", self.base)
                }
                Kind::Event => format!("{}/calendar/events", self.base),
                Kind::Contact => format!("{}/contacts", self.base),
            },
            Some(n) => {
                let id = self.container(n).await?;
                match self.kind {
                    Kind::Event => {
                        format!("{}/calendars/{}/events", self.base, encode_segment(&id))
                    }
                    Kind::Contact => format!(
                        "{}/contactFolders/{}/contacts",
                        self.base,
                        encode_segment(&id)
                    ),
                }
            }
        };
        self.containers.insert(key, url.clone());
        Ok(url)
    }

    /// The id of the calendar or contact folder named `name`, created when missing.
    async fn container(&mut self, name: &str) -> Result<String, ItemError> {
        if self.listed.is_none() {
            let list: Vec<Value> = self
                .job
                .client
                .items(Call::get(self.list_url()).resource(self.base.clone()))
                .try_collect()
                .await?;
            self.listed = Some(
                list.into_iter()
                    .filter_map(|c| {
                        let n = c.get("name").or_else(|| c.get("displayName"))?.as_str()?;
                        Some((n.to_lowercase(), c.get("id")?.as_str()?.to_owned()))
                    })
                    .collect(),
            );
        }
        if let Some(id) = self
            .listed
            .as_ref()
            .and_then(|l| l.get(&name.to_lowercase()))
        {
            return Ok(id.clone());
        }
        let (url, body) = match self.kind {
            Kind::Event => (format!("{}/calendars", self.base), json!({ "name": name })),
            Kind::Contact => (
                format!("{}/contactFolders", self.base),
                json!({ "displayName": name }),
            ),
        };
        let call = Call::post_json(url, &body)?.resource(self.base.clone());
        let created: Value = self.job.client.json(call).await.map_err(|e| {
            ItemError::Other(format!("the folder {name:?} could not be created: {e}"))
        })?;
        let id = created
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ItemError::Other("Graph created a folder without an id".into()))?
            .to_owned();
        if let Some(l) = &mut self.listed {
            l.insert(name.to_lowercase(), id.clone());
        }
        Ok(id)
    }

    fn key(&self, v: &Value) -> String {
        match self.kind {
            Kind::Event => event_key(v),
            Kind::Contact => contact_key(v),
        }
    }

    async fn existing(&mut self, url: &str, key: &str) -> Result<Vec<String>, ItemError> {
        if !self.existing.contains_key(url) {
            let select = match self.kind {
                Kind::Event => "id,subject,start",
                Kind::Contact => "id,displayName,emailAddresses",
            };
            let list: Vec<Value> = self
                .job
                .client
                .items(
                    Call::get(format!("{url}?$select={select}&$top=100"))
                        .resource(self.base.clone()),
                )
                .try_collect()
                .await?;
            let mut map: HashMap<String, Vec<String>> = HashMap::new();
            for v in list {
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    map.entry(self.key(&v)).or_default().push(id.to_owned());
                }
            }
            self.existing.insert(url.to_owned(), map);
        }
        Ok(self
            .existing
            .get(url)
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default())
    }

    async fn item(&mut self, item: &Item) -> Result<Outcome, ItemError> {
        let raw = self.job.read_all(&item.version).await?;
        let stored: Value = serde_json::from_slice(&raw)
            .map_err(|e| ItemError::Other(format!("the stored item is not JSON: {e}")))?;
        let url = self.collection(item).await?;
        let key = self.key(&stored);
        if self.job.req.conflict != Conflict::KeepBoth {
            let existing = self.existing(&url, &key).await?;
            if !existing.is_empty() {
                if self.job.req.conflict == Conflict::Skip {
                    return Ok(Outcome::Skipped);
                }
                for id in existing {
                    let path = match self.kind {
                        Kind::Event => format!("{}/events/{}", self.base, encode_segment(&id)),
                        Kind::Contact => format!("{}/contacts/{}", self.base, encode_segment(&id)),
                    };
                    match self
                        .job
                        .client
                        .send(Call::delete(path).resource(self.base.clone()))
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if matches!(e.class(), ErrorClass::NotFound) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if let Some(m) = self.existing.get_mut(&url) {
                    m.remove(&key);
                }
            }
        }
        let attachments = stored
            .get("attachments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let series = (self.kind == Kind::Event
            && stored.get("recurrence").is_some_and(Value::is_object))
        .then(|| SeriesExceptions::of(&stored))
        .filter(|s| !s.is_empty());
        let body = clean(stored);
        let call = Call::post_json(url.clone(), &body)?.resource(self.base.clone());
        let created: Value = self.job.client.json(call).await?;
        let id = created
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| ItemError::Other("Graph created an item without an id".into()))?
            .to_owned();
        self.existing
            .entry(url)
            .or_default()
            .entry(key)
            .or_default()
            .push(id.clone());
        self.job
            .progress
            .bytes_uploaded
            .fetch_add(raw.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if self.kind == Kind::Event {
            for a in attachments {
                let name = a
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("attachment")
                    .to_owned();
                let mut a = a;
                if let Value::Object(m) = &mut a {
                    m.retain(|k, _| {
                        k == "@odata.type"
                            || !(k.starts_with('@')
                                || k == "id"
                                || k == "lastModifiedDateTime"
                                || k == "size")
                    });
                }
                let call = Call::post_json(
                    format!("{}/events/{}/attachments", self.base, encode_segment(&id)),
                    &a,
                )?
                .resource(self.base.clone());
                if let Err(e) = self.job.client.json::<Value>(call).await {
                    return Err(ItemError::Other(format!(
                        "the event was recreated, but its attachment {name:?} could not be added: {e}"
                    )));
                }
            }
        }
        if let Some(series) = series {
            let failures = series.apply(self.job, &self.base, &id).await?;
            if !failures.is_empty() {
                return Err(ItemError::Other(format!(
                    "the series was recreated, but {} of its changed or cancelled occurrences could not be applied: {}",
                    failures.len(),
                    failures.join("; ")
                )));
            }
        }
        Ok(Outcome::Restored)
    }
}

/// Properties of a changed occurrence that a restore sets on the new series' occurrence.
/// Attendees are left out: changing them on one occurrence would send meeting updates.
const EXCEPTION_PROPERTIES: &[&str] = &[
    "subject",
    "body",
    "start",
    "end",
    "location",
    "isAllDay",
    "showAs",
    "importance",
    "sensitivity",
    "categories",
    "isReminderOn",
    "reminderMinutesBeforeStart",
];

/// The date (`yyyy-mm-dd`) of an occurrence: from its `occurrenceId`
/// (`OID.{seriesMasterId}.{yyyy-mm-dd}`, in the series' time zone), else from `originalStart`.
fn occurrence_date(v: &Value) -> Option<String> {
    v.get("occurrenceId")
        .and_then(Value::as_str)
        .and_then(oid_date)
        .or_else(|| {
            v.get("originalStart")
                .and_then(Value::as_str)
                .and_then(|s| s.get(..10))
        })
        .map(str::to_owned)
}

/// The date part of an `occurrenceId`.
fn oid_date(oid: &str) -> Option<&str> {
    oid.rsplit('.')
        .next()
        .filter(|d| d.len() == 10 && time::Date::parse(d, DATE).is_ok())
}

const DATE: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// A stored series' cancelled and changed occurrences, by original date.
#[derive(Debug, Default)]
struct SeriesExceptions {
    cancelled: Vec<String>,
    changed: Vec<(String, Value)>,
    /// Entries that name no date, with why.
    unreadable: Vec<String>,
}

impl SeriesExceptions {
    fn of(stored: &Value) -> Self {
        let mut s = Self::default();
        for c in stored
            .get("cancelledOccurrences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match c.as_str().and_then(oid_date) {
                Some(d) => s.cancelled.push(d.to_owned()),
                None => s
                    .unreadable
                    .push(format!("a cancelled occurrence {c} names no date")),
            }
        }
        for x in stored
            .get("exceptionOccurrences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match occurrence_date(x) {
                Some(d) => s.changed.push((d, x.clone())),
                None => s.unreadable.push(format!(
                    "the changed occurrence {:?} has neither occurrenceId nor originalStart",
                    x.get("subject").and_then(Value::as_str).unwrap_or_default()
                )),
            }
        }
        s
    }

    fn is_empty(&self) -> bool {
        self.cancelled.is_empty() && self.changed.is_empty() && self.unreadable.is_empty()
    }

    /// The instances window: a day before the first date to two days after the last one
    /// (occurrence dates are in the series' zone, the window in UTC).
    fn window(&self) -> Option<(String, String)> {
        let dates = self
            .cancelled
            .iter()
            .chain(self.changed.iter().map(|(d, _)| d))
            .filter_map(|d| time::Date::parse(d, DATE).ok());
        let (mut lo, mut hi) = (None::<time::Date>, None::<time::Date>);
        for d in dates {
            lo = Some(lo.map_or(d, |l| l.min(d)));
            hi = Some(hi.map_or(d, |h| h.max(d)));
        }
        let from = lo?.previous_day()?.format(DATE).ok()?;
        let to = hi?.next_day()?.next_day()?.format(DATE).ok()?;
        Some((format!("{from}T00:00:00Z"), format!("{to}T00:00:00Z")))
    }

    /// Cancels and changes the new series' occurrences; returns what could not be applied.
    async fn apply(self, job: &Job, base: &str, master: &str) -> Result<Vec<String>, ItemError> {
        let mut failures = self.unreadable.clone();
        let Some((from, to)) = self.window() else {
            return Ok(failures);
        };
        let events = format!("{base}/events");
        let url = format!(
            "{events}/{}/instances?startDateTime={from}&endDateTime={to}&$select=id,occurrenceId,originalStart,start,type&$top=100",
            encode_segment(master)
        );
        let listed: Vec<Value> = job
            .client
            .items(Call::get(url).resource(base.to_owned()))
            .try_collect()
            .await?;
        let by_date: HashMap<String, String> = listed
            .iter()
            .filter_map(|i| Some((occurrence_date(i)?, i.get("id")?.as_str()?.to_owned())))
            .collect();
        for date in &self.cancelled {
            let Some(id) = by_date.get(date) else {
                failures.push(format!(
                    "the cancelled occurrence of {date} is not in the recreated series"
                ));
                continue;
            };
            let call =
                Call::delete(format!("{events}/{}", encode_segment(id))).resource(base.to_owned());
            match job.client.send(call).await {
                Ok(_) => {}
                Err(e) if matches!(e.class(), ErrorClass::NotFound) => {}
                Err(e) if super::is_fatal(&e) => return Err(e.into()),
                Err(e) => failures.push(format!(
                    "the occurrence of {date} could not be cancelled: {e}"
                )),
            }
        }
        for (date, x) in &self.changed {
            let Some(id) = by_date.get(date) else {
                failures.push(format!(
                    "the changed occurrence of {date} is not in the recreated series"
                ));
                continue;
            };
            let body: serde_json::Map<String, Value> = EXCEPTION_PROPERTIES
                .iter()
                .filter_map(|k| {
                    Some(((*k).to_owned(), x.get(*k).filter(|v| !v.is_null())?.clone()))
                })
                .collect();
            let call = Call::patch_json(format!("{events}/{}", encode_segment(id)), &body)?
                .resource(base.to_owned());
            match job.client.json::<Value>(call).await {
                Ok(_) => {}
                Err(e) if super::is_fatal(&e) => return Err(e.into()),
                Err(e) => failures.push(format!(
                    "the occurrence of {date} could not be changed: {e}"
                )),
            }
        }
        Ok(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_server_properties_and_keeps_recurrence() {
        let v = json!({
            "@odata.etag": "W/\"x\"", "id": "AAMk", "changeKey": "k", "iCalUId": "u",
            "createdDateTime": "2026-01-01T00:00:00Z", "webLink": "https://x",
            "subject": "Standup", "recurrence": {"pattern": {"type": "daily", "interval": 1}},
            "start": {"dateTime": "2026-01-05T09:00:00.0000000", "timeZone": "UTC"},
            "attachments@odata.context": "x", "attachments": [],
        });
        let c = clean(v);
        assert_eq!(
            c.as_object().unwrap().keys().cloned().collect::<Vec<_>>(),
            vec!["recurrence", "start", "subject"]
        );
    }

    #[test]
    fn series_exceptions_by_date_and_window() {
        let master = json!({
            "recurrence": {"pattern": {"type": "weekly"}},
            "cancelledOccurrences": ["OID.AAMk=.2026-03-23", "OID.AAMk=.garbage"],
            "exceptionOccurrences": [
                {"occurrenceId": "OID.AAMk=.2026-03-09", "originalStart": "2026-03-08T23:30:00Z", "subject": "A"},
                {"originalStart": "2026-04-06T09:00:00Z", "subject": "B"},
                {"subject": "C"},
            ],
        });
        let s = SeriesExceptions::of(&master);
        assert_eq!(s.cancelled, vec!["2026-03-23"]);
        // The occurrenceId's date (the series' zone) wins over originalStart (UTC).
        let dates: Vec<&str> = s.changed.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(dates, vec!["2026-03-09", "2026-04-06"]);
        assert_eq!(s.unreadable.len(), 2, "{:?}", s.unreadable);
        assert_eq!(
            s.window(),
            Some((
                "2026-03-08T00:00:00Z".to_owned(),
                "2026-04-08T00:00:00Z".to_owned()
            ))
        );
        assert!(SeriesExceptions::of(&json!({"recurrence": {}})).is_empty());
    }

    #[test]
    fn conflict_keys() {
        let e = json!({"subject": "A", "start": {"dateTime": "2026-01-05T09:00:00.0000000"}});
        let e2 = json!({"subject": "A", "start": {"dateTime": "2026-01-05T09:00:00"}});
        assert_eq!(event_key(&e), event_key(&e2));
        let c = json!({"displayName": "Bo", "emailAddresses": [{"address": "Bo@X.com"}]});
        let c2 = json!({"displayName": "Bo", "emailAddresses": [{"address": "bo@x.com"}]});
        assert_eq!(contact_key(&c), contact_key(&c2));
        assert_ne!(contact_key(&c), contact_key(&json!({"displayName": "Bo"})));
    }
}
