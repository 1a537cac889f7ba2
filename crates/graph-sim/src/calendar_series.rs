//! Recurring series as Exchange keeps them: the master item holds its changed occurrences
//! (exceptions) and cancelled occurrences, so changing or cancelling one occurrence changes the
//! master's `changeKey` and `lastModifiedDateTime`.
//!
//! Graph surface: occurrence ids (stable, resolvable by GET/PATCH/DELETE), `occurrenceId`
//! (`OID.{seriesMasterId}.{yyyy-mm-dd}`) and `originalStart` on occurrences and exceptions,
//! `GET /events/{id}/instances?startDateTime=&endDateTime=` (window required; occurrences and
//! exceptions, cancelled ones left out), `PATCH /events/{occurrence}` (the occurrence becomes an
//! exception; it may not cross an adjacent occurrence's day), `DELETE /events/{occurrence}` and
//! `POST /events/{occurrence}/cancel` (the occurrence is cancelled), and on a master
//! `$select=cancelledOccurrences` (only on a GET by the master's id) and
//! `$expand=exceptionOccurrences` (also `GET /events/{id}/exceptionOccurrences`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::calendar::{EventModel, model, oid};
use crate::content::Person;
use crate::http::{GraphRequest, GraphResponse, Method};
use crate::ids::{OutlookKey, OutlookKind};
use crate::odata::{apply_select, page};
use crate::state::SimState;
use crate::tenant::{Event, Mailbox, MailboxCell, Removed};
use crate::time_fmt::{event_time, iso, now, parse_iso};

/// Key of the series state inside a stored event's JSON (never shown to clients).
pub(crate) const SERIES_KEY: &str = "@sim.series";

const DAY: i64 = 86_400;

/// Most occurrences a series expands to (as the listing of instances did before).
const MAX_OCCURRENCES: i64 = 2000;

/// Properties a PATCH of an occurrence may change; anything else in the body is ignored.
const WRITABLE: &[&str] = &[
    "subject",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "isAllDay",
    "showAs",
    "importance",
    "sensitivity",
    "categories",
    "attendees",
    "reminderMinutesBeforeStart",
    "isReminderOn",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "allowNewTimeProposals",
    "hideAttendees",
    "responseRequested",
];

/// The exceptions of a series: changed occurrences with the properties changed on each, and
/// cancelled occurrences, both by occurrence index (0 = the series' first occurrence).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SeriesState {
    /// Occurrence index → properties changed on it.
    pub exceptions: BTreeMap<u32, Map<String, Value>>,
    /// Cancelled occurrence indices.
    pub cancelled: BTreeSet<u32>,
}

impl SeriesState {
    /// Reads the state kept in a stored event's JSON (empty when absent or malformed).
    pub(crate) fn from_json(v: &Value) -> Self {
        let exceptions = v["exceptions"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_object()?.clone())))
            .collect();
        let cancelled = v["cancelled"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| u32::try_from(k.as_u64()?).ok())
            .collect();
        Self {
            exceptions,
            cancelled,
        }
    }

    /// The state as stored inside the event's JSON.
    pub(crate) fn to_json(&self) -> Value {
        let exceptions: Map<String, Value> = self
            .exceptions
            .iter()
            .map(|(k, v)| (k.to_string(), Value::Object(v.clone())))
            .collect();
        json!({"exceptions": exceptions, "cancelled": self.cancelled.iter().collect::<Vec<_>>()})
    }

    /// The exceptions a generated series starts with: about half of the generated series of
    /// four or more occurrences have their second occurrence moved an hour later (all-day ones:
    /// renamed only) with "(moved)" added to its subject, and their third cancelled.
    pub(crate) fn generated(
        seed: u64,
        occurrences: Option<i64>,
        all_day: bool,
        subject: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Self {
        let mut s = Self::default();
        if occurrences.is_none_or(|n| n < 4) || !crate::rng::mix(seed, 0x5E51).is_multiple_of(2) {
            return s;
        }
        let mut changed = Map::new();
        changed.insert("subject".into(), json!(format!("{subject} (moved)")));
        if !all_day {
            let (from, to) = (start + step + 3600, end + step + 3600);
            changed.insert(
                "start".into(),
                json!({"dateTime": event_time(from), "timeZone": "UTC"}),
            );
            changed.insert(
                "end".into(),
                json!({"dateTime": event_time(to), "timeZone": "UTC"}),
            );
        }
        s.exceptions.insert(1, changed);
        s.cancelled.insert(2);
        s
    }
}

/// Seconds between two occurrences of a series.
fn step(m: &EventModel) -> Option<i64> {
    let r = m.recurrence.as_ref()?;
    Some(pattern_step(r.weekly, r.interval))
}

/// Seconds between two occurrences of a generated series pattern (for [`SeriesState::generated`]).
pub(crate) fn pattern_step(weekly: bool, interval: i64) -> i64 {
    (if weekly { 7 * DAY } else { DAY }) * interval
}

/// The original start and end of occurrence `k`, if the series has it.
fn original(m: &EventModel, k: u32) -> Option<(i64, i64)> {
    let r = m.recurrence.as_ref()?;
    let k64 = i64::from(k);
    if k64 >= MAX_OCCURRENCES || r.count.is_some_and(|c| k64 >= c) {
        return None;
    }
    let s = m.start + k64 * step(m)?;
    if r.until.is_some_and(|u| s > u) {
        return None;
    }
    Some((s, s + (m.end - m.start)))
}

/// One instance of an event: a single event, an occurrence or an exception.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Instance {
    /// Occurrence index (`None`: a single event).
    pub index: Option<u32>,
    /// Start of the occurrence in the pattern.
    pub original: i64,
    /// Actual start and end (an exception's own).
    pub start: i64,
    /// Actual end.
    pub end: i64,
    /// Whether it is an exception.
    pub exception: bool,
}

/// An exception's own start and end (its changed `start`/`end`, else the original ones).
fn actual(changed: Option<&Map<String, Value>>, s: i64, e: i64) -> (i64, i64) {
    let time = |k: &str| {
        changed
            .and_then(|c| c.get(k))
            .and_then(|v| v["dateTime"].as_str())
            .and_then(parse_iso)
    };
    let start = time("start").unwrap_or(s);
    let end = time("end").unwrap_or(start + (e - s));
    (start, end)
}

fn instance(m: &EventModel, k: u32) -> Option<Instance> {
    if m.series.cancelled.contains(&k) {
        return None;
    }
    let (s, e) = original(m, k)?;
    let changed = m.series.exceptions.get(&k);
    let (start, end) = actual(changed, s, e);
    Some(Instance {
        index: Some(k),
        original: s,
        start,
        end,
        exception: changed.is_some(),
    })
}

/// Instances of an event overlapping `[from, to)`, cancelled occurrences left out and
/// exceptions at their own times.
pub(crate) fn instances(m: &EventModel, from: i64, to: i64) -> Vec<Instance> {
    let Some(step) = step(m) else {
        return if m.start < to && m.end > from {
            vec![Instance {
                index: None,
                original: m.start,
                start: m.start,
                end: m.end,
                exception: false,
            }]
        } else {
            Vec::new()
        };
    };
    let mut out = Vec::new();
    for k in 0..u32::try_from(MAX_OCCURRENCES).unwrap_or(0) {
        let Some((s, _)) = original(m, k) else { break };
        // An exception stays between its neighbours' days, so nothing later can reach the window.
        if s >= to.saturating_add(step) {
            break;
        }
        if let Some(i) = instance(m, k)
            && i.start < to
            && i.end > from
        {
            out.push(i);
        }
    }
    out
}

/// `OID.{seriesMasterId}.{yyyy-mm-dd}` of the occurrence starting (in the pattern) at `original`.
fn occurrence_id(master: &str, original: i64) -> String {
    format!("OID.{master}.{}", &iso(original)[..10])
}

/// The JSON of one instance of `ev`.
pub(crate) fn instance_json(
    state: &SimState,
    mb: &Mailbox,
    ev: &Event,
    m: &EventModel,
    i: &Instance,
) -> Value {
    let mut v = m.json.clone();
    let Some(k) = i.index else {
        return v;
    };
    let master = oid(state, OutlookKind::Event, mb.idx, ev.serial, 0);
    v["id"] = Value::String(oid(state, OutlookKind::Occurrence, mb.idx, ev.serial, k));
    v["occurrenceId"] = Value::String(occurrence_id(&master, i.original));
    v["originalStart"] = Value::String(iso(i.original));
    v["seriesMasterId"] = Value::String(master);
    v["type"] = json!(if i.exception {
        "exception"
    } else {
        "occurrence"
    });
    v["recurrence"] = Value::Null;
    v["start"] = json!({"dateTime": event_time(i.start), "timeZone": "UTC"});
    v["end"] = json!({"dateTime": event_time(i.end), "timeZone": "UTC"});
    if let (Some(changed), Value::Object(o)) = (m.series.exceptions.get(&k), &mut v) {
        for (key, value) in changed {
            if key != "start" && key != "end" {
                o.insert(key.clone(), value.clone());
            }
        }
        if changed.contains_key("body") {
            let text = o
                .get("body")
                .and_then(|b| b["content"].as_str())
                .unwrap_or("")
                .replace(['<', '>'], " ");
            o.insert(
                "bodyPreview".into(),
                Value::String(crate::content::preview(&text)),
            );
        }
    }
    v
}

/// The exception occurrences of a series, in order.
pub(crate) fn exceptions(state: &SimState, mb: &Mailbox, ev: &Event, m: &EventModel) -> Vec<Value> {
    m.series
        .exceptions
        .keys()
        .filter_map(|k| instance(m, *k))
        .map(|i| instance_json(state, mb, ev, m, &i))
        .collect()
}

/// `cancelledOccurrences` of a series.
pub(crate) fn cancelled(state: &SimState, mb: &Mailbox, ev: &Event, m: &EventModel) -> Vec<Value> {
    let master = oid(state, OutlookKind::Event, mb.idx, ev.serial, 0);
    m.series
        .cancelled
        .iter()
        .filter_map(|k| original(m, *k))
        .map(|(s, _)| Value::String(occurrence_id(&master, s)))
        .collect()
}

/// The names listed in `$expand` (without nested options), lower case.
fn expanded(req: &GraphRequest) -> Vec<String> {
    let Some(e) = req.param("expand") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let (mut depth, mut cur) = (0i32, String::new());
    for c in e.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ if depth == 0 => cur.push(c),
            _ => {}
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The nested `$select` of `$expand=name($select=…)`, if any.
fn nested_select(req: &GraphRequest, name: &str) -> Option<String> {
    let e = req.param("expand")?;
    let lower = e.to_lowercase();
    let at = lower.find(&format!("{name}("))? + name.len() + 1;
    let inner = &e[at..];
    let inner = &inner[..inner.find(')')?];
    inner.split(';').find_map(|o| {
        let (k, v) = o.split_once('=')?;
        k.trim()
            .trim_start_matches('$')
            .eq_ignore_ascii_case("select")
            .then(|| v.trim().to_owned())
    })
}

/// `GET /events/{master}` with `$select` (`cancelledOccurrences` only when selected) and
/// `$expand=exceptionOccurrences`.
pub(crate) fn get_master(
    state: &SimState,
    req: &GraphRequest,
    mb: &Mailbox,
    ev: &Event,
    m: &EventModel,
) -> GraphResponse {
    let mut v = m.json.clone();
    let select = req.param("select");
    let selects_cancelled = select.is_some_and(|s| {
        s.split(',')
            .any(|x| x.trim().eq_ignore_ascii_case("cancelledOccurrences"))
    });
    if selects_cancelled && m.recurrence.is_some() {
        v["cancelledOccurrences"] = Value::Array(cancelled(state, mb, ev, m));
    }
    apply_select(&mut v, select);
    if expanded(req).iter().any(|e| e == "exceptionoccurrences") {
        let inner = nested_select(req, "exceptionoccurrences");
        let mut list = exceptions(state, mb, ev, m);
        for x in &mut list {
            apply_select(x, inner.as_deref());
        }
        v["exceptionOccurrences"] = Value::Array(list);
    }
    GraphResponse::ok(v)
}

fn window(req: &GraphRequest) -> Result<(i64, i64), GraphResponse> {
    match (
        req.param("startDateTime").and_then(parse_iso),
        req.param("endDateTime").and_then(parse_iso),
    ) {
        (Some(s), Some(e)) => Ok((s, e)),
        _ => Err(GraphResponse::error(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )),
    }
}

/// `GET /events/{master}/instances?startDateTime=&endDateTime=` and
/// `GET /events/{master}/exceptionOccurrences`.
pub(crate) fn list(
    state: &SimState,
    req: &GraphRequest,
    mb: &Mailbox,
    ev: &Event,
    m: &EventModel,
    owner: &Person,
    what: &str,
) -> GraphResponse {
    let url = format!("{}{}", state.graph(), req.path);
    let items = if what == "instances" {
        let (from, to) = match window(req) {
            Ok(w) => w,
            Err(e) => return e,
        };
        instances(m, from, to)
            .iter()
            .map(|i| instance_json(state, mb, ev, m, i))
            .collect()
    } else {
        exceptions(state, mb, ev, m)
    };
    let master = oid(state, OutlookKind::Event, mb.idx, ev.serial, 0);
    page(
        req,
        &url,
        &format!(
            "{}/$metadata#users('{}')/events('{master}')/{what}",
            state.graph(),
            owner.address
        ),
        items,
        10,
        1000,
    )
}

/// The JSON an event is stored as when it changes: its current view, its attachments and the
/// series state (so that a generated event keeps what it had).
pub(crate) fn stored_json(m: &EventModel) -> Value {
    let mut j = m.json.clone();
    j["attachments"] = Value::Array(
        m.attachments
            .iter()
            .map(|(n, ct, b)| json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": n, "contentType": ct,
                "contentBytes": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)}))
            .collect(),
    );
    j[SERIES_KEY] = m.series.to_json();
    j
}

/// Requests on an occurrence id: GET, PATCH (becomes an exception), DELETE and `cancel`.
pub(crate) fn occurrence_item(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    key: OutlookKey,
    tail: &[&str],
) -> GraphResponse {
    let t: Vec<String> = tail.iter().map(|s| s.to_lowercase()).collect();
    let t: Vec<&str> = t.iter().map(String::as_str).collect();
    let k = key.sub;
    match (req.method, t.as_slice()) {
        (Method::Get, []) => state.tenant.with_mailbox(cell, |mb| {
            let Some(ev) = event_of(mb, key) else {
                return GraphResponse::exchange_not_found();
            };
            let m = model(state, mb, owner, ev);
            match instance(&m, k) {
                Some(i) => {
                    let mut v = instance_json(state, mb, ev, &m, &i);
                    apply_select(&mut v, req.param("select"));
                    GraphResponse::ok(v)
                }
                None => GraphResponse::exchange_not_found(),
            }
        }),
        (Method::Patch, []) => {
            let body = match req.json() {
                Ok(Value::Object(b)) => b,
                Ok(_) => {
                    return GraphResponse::error(
                        400,
                        "ErrorInvalidRequest",
                        "The request body must be a JSON object.",
                    );
                }
                Err(e) => return e,
            };
            for t in ["start", "end"] {
                if body
                    .get(t)
                    .is_some_and(|v| v["dateTime"].as_str().and_then(parse_iso).is_none())
                {
                    return GraphResponse::error(
                        400,
                        "ErrorInvalidRequest",
                        &format!("The {t} time of the occurrence is not a valid date and time."),
                    );
                }
            }
            let changes: Map<String, Value> = body
                .into_iter()
                .filter(|(k, _)| WRITABLE.contains(&k.as_str()))
                .collect();
            change(state, cell, owner, key, |m, series| {
                let (s, e) = original(m, k).ok_or_else(GraphResponse::exchange_not_found)?;
                let mut merged = series.exceptions.get(&k).cloned().unwrap_or_default();
                merged.extend(changes);
                let (start, _) = actual(Some(&merged), s, e);
                let neighbour = |mut j: u32, up: bool| loop {
                    j = if up {
                        j.checked_add(1)?
                    } else {
                        j.checked_sub(1)?
                    };
                    original(m, j)?;
                    if !series.cancelled.contains(&j) {
                        let (ns, ne) = original(m, j)?;
                        return Some(actual(series.exceptions.get(&j), ns, ne).0);
                    }
                };
                let day = |t: i64| t.div_euclid(DAY);
                let crosses = neighbour(k, false).is_some_and(|p| day(start) <= day(p))
                    || neighbour(k, true).is_some_and(|n| day(start) >= day(n));
                if crosses {
                    return Err(GraphResponse::error(
                        400,
                        "ErrorOccurrenceCrossingBoundary",
                        "The modified occurrence is crossing or overlapping adjacent occurrence.",
                    ));
                }
                series.exceptions.insert(k, merged);
                Ok(())
            })
            .map_or_else(|e| e, GraphResponse::ok)
        }
        (Method::Delete, []) | (Method::Post, ["cancel"]) => {
            let status = if req.method == Method::Delete {
                204
            } else {
                202
            };
            change(state, cell, owner, key, |m, series| {
                original(m, k).ok_or_else(GraphResponse::exchange_not_found)?;
                series.exceptions.remove(&k);
                series.cancelled.insert(k);
                Ok(())
            })
            .map_or_else(|e| e, |_| GraphResponse::empty(status))
        }
        _ => GraphResponse::bad_url(tail.last().copied().unwrap_or("events")),
    }
}

fn event_of(mb: &Mailbox, key: OutlookKey) -> Option<&Event> {
    if key.mailbox != mb.idx {
        return None;
    }
    mb.events.get(key.serial as usize)?.as_ref()
}

/// Applies `f` to the series state of the occurrence's master, stores the master (new
/// `changeKey` and `lastModifiedDateTime`) and returns the occurrence's new view.
fn change(
    state: &SimState,
    cell: &MailboxCell,
    owner: &Person,
    key: OutlookKey,
    f: impl FnOnce(&EventModel, &mut SeriesState) -> Result<(), GraphResponse>,
) -> Result<Value, GraphResponse> {
    let seq = state.tenant.next_seq();
    state.tenant.with_mailbox_mut(cell, |mb| {
        let Some(ev) = event_of(mb, key) else {
            return Err(GraphResponse::exchange_not_found());
        };
        let mut m = model(state, mb, owner, ev);
        if m.series.cancelled.contains(&key.sub) || original(&m, key.sub).is_none() {
            return Err(GraphResponse::exchange_not_found());
        }
        let mut series = m.series.clone();
        f(&m, &mut series)?;
        m.series = series;
        let stored = stored_json(&m);
        let cancelled = m.series.cancelled.contains(&key.sub);
        let mut calendar = None;
        if let Some(Some(e)) = mb.events.get_mut(key.serial as usize) {
            e.json = Some(Arc::new(stored));
            e.changed_seq = seq;
            e.modified = now();
            calendar = Some(e.calendar);
        }
        // A cancelled occurrence leaves calendarView/delta as a removal.
        if let (true, Some(c)) = (cancelled, calendar) {
            let r = Removed {
                seq,
                serial: key.serial,
                sub: key.sub,
                id: oid(state, OutlookKind::Occurrence, mb.idx, key.serial, key.sub),
                name: String::new(),
            };
            if let Some(Some(cal)) = mb.calendars.get_mut(c as usize) {
                cal.log.push(r.clone());
            }
            mb.event_log.push(r);
        }
        let Some(ev) = event_of(mb, key) else {
            return Err(GraphResponse::exchange_not_found());
        };
        let m = model(state, mb, owner, ev);
        let view =
            instance(&m, key.sub).map_or(Value::Null, |i| instance_json(state, mb, ev, &m, &i));
        Ok(view)
    })
}

/// The series part of an event's canonical snapshot JSON: cancelled occurrences by date and
/// exceptions without their ids and server stamps; nothing for an event without exceptions.
pub(crate) fn snapshot_fields(
    state: &SimState,
    mb: &Mailbox,
    ev: &Event,
    m: &EventModel,
    into: &mut Value,
) {
    if m.series.exceptions.is_empty() && m.series.cancelled.is_empty() {
        return;
    }
    let dates: Vec<Value> = m
        .series
        .cancelled
        .iter()
        .filter_map(|k| original(m, *k))
        .map(|(s, _)| Value::String(iso(s)[..10].to_owned()))
        .collect();
    let list: Vec<Value> = exceptions(state, mb, ev, m)
        .into_iter()
        .map(|mut x| {
            if let Value::Object(o) = &mut x {
                for k in [
                    "@odata.etag",
                    "id",
                    "seriesMasterId",
                    "occurrenceId",
                    "changeKey",
                    "createdDateTime",
                    "lastModifiedDateTime",
                    "iCalUId",
                    "uid",
                    "webLink",
                ] {
                    o.remove(k);
                }
            }
            x
        })
        .collect();
    into["cancelledOccurrences"] = Value::Array(dates);
    into["exceptionOccurrences"] = Value::Array(list);
}
