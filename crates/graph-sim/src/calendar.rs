//! Calendars (events, recurrence, `calendarView/delta`, attachments) of users and groups;
//! contact routes are dispatched from here to `contacts.rs` (folders,
//! contacts, delta), with creation, updates and deletion.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::calendar_series::{SERIES_KEY, SeriesState, pattern_step};
use crate::content::{Person, event_spec};
use crate::http::{GraphRequest, GraphResponse, Method};
use crate::ids::{OutlookKey, OutlookKind};
use crate::odata::{LiveEntry, page};
use crate::state::SimState;
use crate::tenant::{Event, Mailbox, MailboxCell, Removed, UserKind};
use crate::time_fmt::{event_time, iso, now, parse_iso};

const DAY: i64 = 86_400;
const WEEKDAYS: [&str; 7] = [
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
];

pub(crate) fn oid(state: &SimState, kind: OutlookKind, mb: u32, serial: u32, sub: u32) -> String {
    state.tenant.codec.outlook(OutlookKey {
        kind,
        mailbox: mb,
        serial,
        sub,
    })
}

/// The recurrence of an event: (type, interval, occurrences, end) with dates in Unix seconds.
#[derive(Clone, Debug)]
pub(crate) struct Recurrence {
    /// Weekly (else daily).
    pub weekly: bool,
    /// Weeks or days between occurrences.
    pub interval: i64,
    /// Number of occurrences (`numbered` range).
    pub count: Option<i64>,
    /// Last moment an occurrence may start (`endDate` range).
    pub until: Option<i64>,
}

/// An event as Graph shows it, with what its instances are computed from.
pub(crate) struct EventModel {
    /// The event's JSON (a series master's without its exceptions).
    pub json: Value,
    /// Start (Unix seconds).
    pub start: i64,
    /// End (Unix seconds).
    pub end: i64,
    /// The recurrence of a series master.
    pub recurrence: Option<Recurrence>,
    /// Attachments: name, content type, bytes.
    pub attachments: Vec<(String, String, Vec<u8>)>,
    /// Changed and cancelled occurrences of a series.
    pub series: SeriesState,
}

fn recurrence_json(r: &Recurrence, start: i64) -> Value {
    let day = WEEKDAYS[usize::try_from((start / DAY).rem_euclid(7)).unwrap_or(0)];
    let start_date = &iso(start)[..10];
    let range = match (r.count, r.until) {
        (Some(n), _) => {
            json!({"type": "numbered", "startDate": start_date, "endDate": "0001-01-01", "recurrenceTimeZone": "UTC", "numberOfOccurrences": n})
        }
        (None, Some(u)) => {
            json!({"type": "endDate", "startDate": start_date, "endDate": &iso(u)[..10], "recurrenceTimeZone": "UTC", "numberOfOccurrences": 0})
        }
        _ => {
            json!({"type": "noEnd", "startDate": start_date, "endDate": "0001-01-01", "recurrenceTimeZone": "UTC", "numberOfOccurrences": 0})
        }
    };
    json!({"pattern": {"type": if r.weekly { "weekly" } else { "daily" }, "interval": r.interval, "month": 0, "dayOfMonth": 0,
        "daysOfWeek": if r.weekly { json!([day]) } else { json!([]) }, "firstDayOfWeek": "sunday", "index": "first"}, "range": range})
}

fn parse_recurrence(v: &Value) -> Option<Recurrence> {
    let p = &v["pattern"];
    let weekly = match p["type"].as_str()? {
        "weekly" => true,
        "daily" => false,
        _ => return None,
    };
    let r = &v["range"];
    Some(Recurrence {
        weekly,
        interval: p["interval"].as_i64().unwrap_or(1).max(1),
        count: (r["type"].as_str() == Some("numbered"))
            .then(|| r["numberOfOccurrences"].as_i64().unwrap_or(1)),
        until: (r["type"].as_str() == Some("endDate"))
            .then(|| r["endDate"].as_str().and_then(parse_iso))
            .flatten()
            .map(|t| t + DAY - 1),
    })
}

pub(crate) fn model(state: &SimState, mb: &Mailbox, owner: &Person, ev: &Event) -> EventModel {
    let id = oid(state, OutlookKind::Event, mb.idx, ev.serial, 0);
    let spec = event_spec(ev.seed, &state.tenant.domain);
    let mut recurrence = spec.recurrence.map(|(interval, count)| Recurrence {
        weekly: true,
        interval: i64::from(interval),
        count: Some(i64::from(count)),
        until: None,
    });
    let (mut start, mut end) = (spec.start, spec.end);
    let mut subject = spec.subject.clone();
    let mut body = json!({"contentType": "html", "content": spec.body});
    let mut attendees: Vec<Value> = spec.attendees.iter().map(|p| json!({"type": "required", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"}, "emailAddress": {"name": p.name, "address": p.address}})).collect();
    let mut location = spec.location.clone();
    let mut all_day = spec.all_day;
    // Generated series carry exceptions in tenants larger than the Tiny profile's (whose
    // calendars stay plain patterns for the tests built on them).
    let mut series = SeriesState::generated(
        ev.seed,
        (state.tenant.sizes.events_per_user > crate::Profile::Tiny.sizes().events_per_user)
            .then(|| recurrence.as_ref().and_then(|r| r.count))
            .flatten(),
        all_day,
        &subject,
        start,
        end,
        pattern_step(true, recurrence.as_ref().map_or(1, |r| r.interval)),
    );
    let mut attachments: Vec<(String, String, Vec<u8>)> = spec
        .attachment
        .as_ref()
        .map(|a| (a.name.clone(), a.content_type.clone(), a.bytes()))
        .into_iter()
        .collect();
    if let Some(j) = &ev.json {
        attachments = j["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                let data = STANDARD.decode(a["contentBytes"].as_str()?).ok()?;
                let name = a["name"].as_str().unwrap_or("attachment").to_string();
                let ct = a["contentType"].as_str().map_or_else(
                    || crate::content::mime_type(&name).to_string(),
                    str::to_string,
                );
                Some((name, ct, data))
            })
            .collect();
        subject = j["subject"].as_str().unwrap_or("").to_string();
        if j["body"].is_object() {
            body = j["body"].clone();
        }
        start = j["start"]["dateTime"]
            .as_str()
            .and_then(parse_iso)
            .unwrap_or(start);
        end = j["end"]["dateTime"]
            .as_str()
            .and_then(parse_iso)
            .unwrap_or(start + 1800);
        recurrence = parse_recurrence(&j["recurrence"]);
        attendees = j["attendees"].as_array().cloned().unwrap_or_default();
        location = j["location"]["displayName"]
            .as_str()
            .unwrap_or("")
            .to_string();
        all_day = j["isAllDay"].as_bool().unwrap_or(false);
        series = if recurrence.is_some() {
            SeriesState::from_json(&j[SERIES_KEY])
        } else {
            SeriesState::default()
        };
    }
    let has_att = !attachments.is_empty();
    let json = json!({
        "@odata.etag": format!("W/\"DwAAABYAAA{}\"", STANDARD.encode(ev.changed_seq.to_be_bytes())),
        "id": id,
        "createdDateTime": iso(ev.modified), "lastModifiedDateTime": iso(ev.modified),
        "changeKey": STANDARD.encode(ev.changed_seq.to_be_bytes()),
        "categories": [], "transactionId": null,
        "originalStartTimeZone": "UTC", "originalEndTimeZone": "UTC",
        "iCalUId": format!("040000008200E00074C5B7101A82E008{:032X}", u128::from(ev.seed) << 32 | u128::from(ev.serial)),
        "uid": format!("040000008200E00074C5B7101A82E008{:032X}", u128::from(ev.seed) << 32 | u128::from(ev.serial)),
        "reminderMinutesBeforeStart": 15, "isReminderOn": true, "hasAttachments": has_att,
        "subject": subject,
        "bodyPreview": crate::content::preview(&body["content"].as_str().unwrap_or("").replace(['<', '>'], " ")),
        "importance": "normal", "sensitivity": "normal", "isAllDay": all_day, "isCancelled": false, "isOrganizer": true,
        "responseRequested": true, "seriesMasterId": null, "occurrenceId": null, "showAs": "busy",
        "type": if recurrence.is_some() { "seriesMaster" } else { "singleInstance" },
        "webLink": format!("https://outlook.office365.com/owa/?itemid={id}&exvsurl=1&path=/calendar/item"),
        "onlineMeetingUrl": null, "isOnlineMeeting": false, "onlineMeetingProvider": "unknown", "allowNewTimeProposals": true,
        "isDraft": false, "hideAttendees": false,
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "body": body,
        "start": {"dateTime": event_time(start), "timeZone": "UTC"},
        "end": {"dateTime": event_time(end), "timeZone": "UTC"},
        "location": {"displayName": location, "locationType": "default", "uniqueIdType": "unknown"},
        "locations": [],
        "recurrence": recurrence.as_ref().map_or(Value::Null, |r| recurrence_json(r, start)),
        "attendees": attendees,
        "organizer": {"emailAddress": {"name": owner.name, "address": owner.address}},
        "onlineMeeting": null,
    });
    EventModel {
        json,
        start,
        end,
        recurrence,
        attachments,
        series,
    }
}

/// Routes `/users/{u}/calendars|calendar|calendarView|events|contactFolders|contacts…`.
pub fn route(state: &SimState, req: &GraphRequest, idx: u32, rest: &[&str]) -> GraphResponse {
    let kind = state
        .tenant
        .dir
        .read()
        .users
        .get(idx as usize)
        .map(|u| u.kind);
    if kind == Some(UserKind::NoMailbox) {
        return crate::mail::no_mailbox();
    }
    let Some(cell) = state.tenant.mailbox(idx) else {
        return crate::mail::no_mailbox();
    };
    let owner = crate::mail::owner(state, idx);
    let base = format!("{}/users/{}", state.graph(), owner.address);
    route_cell(state, req, &cell, &owner, &base, rest)
}

/// `/groups/{id}/calendar|events|calendarView…`: the group mailbox's calendar.
pub fn group_route(
    state: &SimState,
    req: &GraphRequest,
    group: &str,
    rest: &[&str],
) -> GraphResponse {
    let found = {
        let dir = state.tenant.dir.read();
        dir.groups
            .iter()
            .find(|g| !g.deleted && g.id.to_string() == group.to_lowercase())
            .map(|g| {
                (
                    g.mailbox.clone(),
                    Person {
                        name: g.display_name.clone(),
                        address: format!("{}@{}", g.nickname, state.tenant.domain),
                    },
                    g.id,
                )
            })
    };
    let Some((cell, owner, id)) = found else {
        return GraphResponse::resource_not_found(group);
    };
    let head = rest.first().map(|s| s.to_lowercase()).unwrap_or_default();
    if !["calendar", "events", "calendarview"].contains(&head.as_str()) {
        return GraphResponse::bad_url(rest.first().copied().unwrap_or(group));
    }
    let base = format!("{}/groups/{id}", state.graph());
    route_cell(state, req, &cell, &owner, &base, rest)
}

fn route_cell(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    base: &str,
    rest: &[&str],
) -> GraphResponse {
    let (cell, owner) = (cell, owner.clone());
    let lower: Vec<String> = rest.iter().map(|s| s.to_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let graph = state.graph();
    match (req.method, l.as_slice()) {
        (Method::Get, ["calendars"]) => state.tenant.with_mailbox(cell, |mb| {
            let items = mb
                .calendars
                .iter()
                .flatten()
                .map(|c| calendar_json(state, mb, &owner, c.serial))
                .collect();
            page(
                req,
                &format!("{base}/calendars"),
                &format!("{graph}/$metadata#users('{}')/calendars", owner.address),
                items,
                10,
                1000,
            )
        }),
        (Method::Get, ["calendar"]) => state.tenant.with_mailbox(cell, |mb| {
            GraphResponse::ok(calendar_json(state, mb, &owner, 0))
        }),
        (Method::Get, ["calendars", c]) => {
            state
                .tenant
                .with_mailbox(cell, |mb| match calendar_serial(state, mb, c) {
                    Some(s) => GraphResponse::ok(calendar_json(state, mb, &owner, s)),
                    None => GraphResponse::exchange_not_found(),
                })
        }
        (Method::Get, ["events"] | ["calendar", "events"]) => {
            list_events(state, req, cell, &owner, None, &format!("{base}/events"))
        }
        (Method::Get, ["calendars", _, "events"]) => list_events(
            state,
            req,
            cell,
            &owner,
            Some(rest[1]),
            &format!("{base}/calendars/{}/events", rest[1]),
        ),
        (Method::Post, ["events"] | ["calendar", "events"]) => {
            create_event(state, req, cell, &owner, None)
        }
        (Method::Post, ["calendars", _, "events"]) => {
            create_event(state, req, cell, &owner, Some(rest[1]))
        }
        (Method::Get, ["calendarview", "delta"]) => calendar_view_delta(
            state,
            req,
            cell,
            &owner,
            &format!("{base}/calendarView/delta"),
        ),
        (_, ["events", _, ..]) | (_, ["calendar", "events", _, ..]) => {
            let (id, tail) = if l[0] == "events" {
                (rest[1], &rest[2..])
            } else {
                (rest[2], &rest[3..])
            };
            event_item(state, req, cell, &owner, id, tail)
        }
        (Method::Get, ["contactfolders"]) => state.tenant.with_mailbox(cell, |mb| {
            let items = mb
                .contact_folders
                .iter()
                .flatten()
                .map(|f| crate::contacts::contact_folder_json(state, mb, f.serial))
                .collect();
            page(
                req,
                &format!("{base}/contactFolders"),
                &format!(
                    "{graph}/$metadata#users('{}')/contactFolders",
                    owner.address
                ),
                items,
                10,
                1000,
            )
        }),
        (Method::Get, ["contactfolders", f]) => state.tenant.with_mailbox(cell, |mb| {
            match crate::contacts::contact_folder_serial(state, mb, f) {
                Some(s) => GraphResponse::ok(crate::contacts::contact_folder_json(state, mb, s)),
                None => GraphResponse::exchange_not_found(),
            }
        }),
        (Method::Get, ["contacts"]) => {
            crate::contacts::list_contacts(state, req, cell, None, &format!("{base}/contacts"))
        }
        (Method::Get, ["contactfolders", _, "contacts"]) => crate::contacts::list_contacts(
            state,
            req,
            cell,
            Some(rest[1]),
            &format!("{base}/contactFolders/{}/contacts", rest[1]),
        ),
        (Method::Get, ["contactfolders", _, "contacts", "delta"]) => {
            crate::contacts::contacts_delta(
                state,
                req,
                cell,
                rest[1],
                &format!("{base}/contactFolders/{}/contacts/delta", rest[1]),
            )
        }
        (Method::Post, ["contacts"]) => crate::contacts::create_contact(state, req, cell, None),
        (Method::Post, ["contactfolders", _, "contacts"]) => {
            crate::contacts::create_contact(state, req, cell, Some(rest[1]))
        }
        (_, ["contacts", _]) | (_, ["contactfolders", _, "contacts", _]) => {
            crate::contacts::contact_item(state, req, cell, rest[rest.len() - 1])
        }
        _ => GraphResponse::bad_url(rest.last().copied().unwrap_or("")),
    }
}

fn calendar_serial(state: &SimState, mb: &Mailbox, key: &str) -> Option<u32> {
    let k = state.tenant.codec.decode_outlook(key)?;
    (k.kind == OutlookKind::Calendar
        && k.mailbox == mb.idx
        && mb
            .calendars
            .get(k.serial as usize)
            .is_some_and(Option::is_some))
    .then_some(k.serial)
}

fn calendar_json(state: &SimState, mb: &Mailbox, owner: &Person, serial: u32) -> Value {
    let c = mb.calendars.get(serial as usize).and_then(Option::as_ref);
    json!({
        "id": oid(state, OutlookKind::Calendar, mb.idx, serial, 0),
        "name": c.map_or("", |c| c.name.as_str()), "color": "auto", "hexColor": "", "isDefaultCalendar": c.is_some_and(|c| c.is_default),
        "changeKey": "DxYSthXJXEWwAQSYQnXvIgAAAAAAAA==", "canShare": true, "canViewPrivateItems": true, "canEdit": true,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"], "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": true, "isRemovable": !c.is_some_and(|c| c.is_default),
        "owner": {"name": owner.name, "address": owner.address},
    })
}

fn list_events(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    calendar: Option<&str>,
    url: &str,
) -> GraphResponse {
    let graph = state.graph();
    state.tenant.with_mailbox(cell, |mb| {
        let cal = match calendar {
            Some(c) => match calendar_serial(state, mb, c) {
                Some(s) => Some(s),
                None => return GraphResponse::exchange_not_found(),
            },
            None => None,
        };
        let items = mb
            .events
            .iter()
            .flatten()
            .filter(|e| cal.is_none_or(|c| e.calendar == c))
            .map(|e| model(state, mb, owner, e).json)
            .collect();
        page(
            req,
            url,
            &format!("{graph}/$metadata#users('{}')/events", owner.address),
            items,
            10,
            1000,
        )
    })
}

fn resolve_event(state: &SimState, mb: &Mailbox, id: &str) -> Option<u32> {
    let k = state.tenant.codec.decode_outlook(id)?;
    (k.kind == OutlookKind::Event
        && k.mailbox == mb.idx
        && mb
            .events
            .get(k.serial as usize)
            .is_some_and(Option::is_some))
    .then_some(k.serial)
}

fn event_item(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    id: &str,
    tail: &[&str],
) -> GraphResponse {
    if let Some(key) = state
        .tenant
        .codec
        .decode_outlook(id)
        .filter(|k| k.kind == OutlookKind::Occurrence)
    {
        return crate::calendar_series::occurrence_item(state, req, cell, owner, key, tail);
    }
    let t: Vec<String> = tail.iter().map(|s| s.to_lowercase()).collect();
    let t: Vec<&str> = t.iter().map(String::as_str).collect();
    match (req.method, t.as_slice()) {
        (Method::Get, []) => state.tenant.with_mailbox(cell, |mb| match resolve_event(state, mb, id).and_then(|s| mb.events[s as usize].as_ref()) {
            Some(e) => crate::calendar_series::get_master(state, req, mb, e, &model(state, mb, owner, e)),
            None => GraphResponse::exchange_not_found(),
        }),
        (Method::Get, [what @ ("instances" | "exceptionoccurrences")]) => state.tenant.with_mailbox(cell, |mb| match resolve_event(state, mb, id).and_then(|s| mb.events[s as usize].as_ref()) {
            Some(e) => {
                let what = if *what == "instances" { "instances" } else { "exceptionOccurrences" };
                crate::calendar_series::list(state, req, mb, e, &model(state, mb, owner, e), owner, what)
            }
            None => GraphResponse::exchange_not_found(),
        }),
        (Method::Post, ["cancel"]) => {
            let seq = state.tenant.next_seq();
            state.tenant.with_mailbox_mut(cell, |mb| match resolve_event(state, mb, id) {
                Some(s) => {
                    delete_event(state, mb, s, seq);
                    GraphResponse::empty(202)
                }
                None => GraphResponse::exchange_not_found(),
            })
        }
        (Method::Get, ["attachments", ..]) => state.tenant.with_mailbox(cell, |mb| {
            let rest = &tail[1..];
            let Some(e) = resolve_event(state, mb, id).and_then(|s| mb.events[s as usize].as_ref()) else { return GraphResponse::exchange_not_found() };
            let m = model(state, mb, owner, e);
            let atts: Vec<Value> = m
                .attachments
                .iter()
                .enumerate()
                .map(|(i, (name, ct, bytes))| json!({"@odata.type": "#microsoft.graph.fileAttachment",
                    "id": oid(state, OutlookKind::Attachment, mb.idx, e.serial, (1 << 20) + u32::try_from(i).unwrap_or(0)),
                    "lastModifiedDateTime": iso(e.modified), "name": name, "contentType": ct, "size": bytes.len(), "isInline": false, "contentId": null,
                    "contentLocation": null, "contentBytes": STANDARD.encode(bytes)}))
                .collect();
            let index = |aid: &str| {
                state.tenant.codec.decode_outlook(aid).filter(|k| k.kind == OutlookKind::Attachment && k.serial == e.serial && k.mailbox == mb.idx).and_then(|k| usize::try_from(k.sub.checked_sub(1 << 20)?).ok())
            };
            match rest {
                [] => GraphResponse::ok(json!({"value": atts})),
                [aid, v] if v.eq_ignore_ascii_case("$value") => match index(aid).and_then(|i| m.attachments.get(i)) {
                    Some((_, ct, bytes)) => GraphResponse::raw(200, Bytes::from(bytes.clone()), ct),
                    None => GraphResponse::exchange_not_found(),
                },
                [aid] => index(aid).and_then(|i| atts.get(i).cloned()).map_or_else(GraphResponse::exchange_not_found, GraphResponse::ok),
                _ => GraphResponse::bad_url("attachments"),
            }
        }),
        (Method::Post, ["attachments"]) => {
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            if body["contentBytes"].as_str().and_then(|b| STANDARD.decode(b).ok()).is_none() {
                return GraphResponse::error(400, "ErrorInvalidRequest", "contentBytes must be valid base64.");
            }
            let seq = state.tenant.next_seq();
            state.tenant.with_mailbox_mut(cell, |mb| {
                let Some(s) = resolve_event(state, mb, id) else { return GraphResponse::exchange_not_found() };
                let current = mb.events[s as usize].as_ref().map(|e| model(state, mb, owner, e));
                let Some(current) = current else { return GraphResponse::exchange_not_found() };
                let mut j = crate::calendar_series::stored_json(&current);
                let mut list: Vec<Value> = current
                    .attachments
                    .iter()
                    .map(|(n, ct, b)| json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": n, "contentType": ct, "contentBytes": STANDARD.encode(b)}))
                    .collect();
                let index = list.len();
                list.push(body.clone());
                j["attachments"] = Value::Array(list);
                if let Some(Some(e)) = mb.events.get_mut(s as usize) {
                    e.json = Some(Arc::new(j));
                    e.changed_seq = seq;
                    e.modified = now();
                }
                let mut out = body;
                out["id"] = json!(oid(state, OutlookKind::Attachment, mb.idx, s, (1 << 20) + u32::try_from(index).unwrap_or(0)));
                if let Some(o) = out.as_object_mut() {
                    o.remove("contentBytes");
                }
                GraphResponse::json(201, out)
            })
        }
        (Method::Patch, []) => {
            let body = match req.json() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let seq = state.tenant.next_seq();
            state.tenant.with_mailbox_mut(cell, |mb| {
                let Some(s) = resolve_event(state, mb, id) else { return GraphResponse::exchange_not_found() };
                let Some(current) = mb.events[s as usize].as_ref().map(|e| model(state, mb, owner, e)) else {
                    return GraphResponse::exchange_not_found();
                };
                // Keep the attachments and the series' exceptions the event has (they are not
                // part of its JSON view); a new recurrence pattern drops the exceptions, as in
                // Exchange.
                let mut merged = crate::calendar_series::stored_json(&current);
                if body.get("recurrence").is_some() {
                    merged[SERIES_KEY] = SeriesState::default().to_json();
                }
                if let (Value::Object(m), Value::Object(b)) = (&mut merged, &body) {
                    for (k, v) in b {
                        if k != SERIES_KEY {
                            m.insert(k.clone(), v.clone());
                        }
                    }
                }
                if let Some(Some(e)) = mb.events.get_mut(s as usize) {
                    e.json = Some(Arc::new(merged));
                    e.changed_seq = seq;
                    e.modified = now();
                }
                match mb.events[s as usize].as_ref() {
                    Some(e) => GraphResponse::ok(model(state, mb, owner, e).json),
                    None => GraphResponse::exchange_not_found(),
                }
            })
        }
        (Method::Delete, []) => {
            let seq = state.tenant.next_seq();
            state.tenant.with_mailbox_mut(cell, |mb| match resolve_event(state, mb, id) {
                Some(s) => {
                    delete_event(state, mb, s, seq);
                    GraphResponse::empty(204)
                }
                None => GraphResponse::exchange_not_found(),
            })
        }
        _ => GraphResponse::bad_url(tail.last().copied().unwrap_or(id)),
    }
}

/// Deletes an event and logs it.
pub fn delete_event(state: &SimState, mb: &mut Mailbox, serial: u32, seq: u64) {
    if let Some(e) = mb.events.get_mut(serial as usize).and_then(Option::take) {
        let id = oid(state, OutlookKind::Event, mb.idx, serial, 0);
        let r = Removed {
            seq,
            serial,
            sub: 0,
            id,
            name: String::new(),
        };
        if let Some(Some(c)) = mb.calendars.get_mut(e.calendar as usize) {
            c.log.push(r.clone());
        }
        mb.event_log.push(r);
    }
}

fn create_event(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    calendar: Option<&str>,
) -> GraphResponse {
    let mut body = match req.json() {
        Ok(b) => b,
        Err(e) => return e,
    };
    if let Value::Object(o) = &mut body {
        o.remove(SERIES_KEY);
    }
    if body["start"]["dateTime"]
        .as_str()
        .and_then(parse_iso)
        .is_none()
        || body["end"]["dateTime"]
            .as_str()
            .and_then(parse_iso)
            .is_none()
    {
        return GraphResponse::error(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. The start and end dates are required.",
        );
    }
    let seq = state.tenant.next_seq();
    state.tenant.with_mailbox_mut(cell, |mb| {
        let cal = match calendar {
            Some(c) => match calendar_serial(state, mb, c) {
                Some(s) => s,
                None => return GraphResponse::exchange_not_found(),
            },
            None => 0,
        };
        let serial = u32::try_from(mb.events.len()).unwrap_or(u32::MAX);
        mb.events.push(Some(Event {
            serial,
            calendar: cal,
            changed_seq: seq,
            seed: crate::rng::mix(seq, 0xE1),
            json: Some(Arc::new(body)),
            modified: now(),
        }));
        match mb.events[serial as usize].as_ref() {
            Some(e) => GraphResponse::json(201, model(state, mb, owner, e).json),
            None => GraphResponse::exchange_not_found(),
        }
    })
}

fn calendar_view_delta(
    state: &SimState,
    req: &GraphRequest,
    cell: &MailboxCell,
    owner: &Person,
    url: &str,
) -> GraphResponse {
    let graph = state.graph();
    let mut cursor = match crate::odata::delta_cursor(req, state.tenant.current_seq(), 10, 1000) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if cursor.extra.is_none() {
        let (Some(s), Some(e)) = (
            req.param("startDateTime").and_then(parse_iso),
            req.param("endDateTime").and_then(parse_iso),
        ) else {
            return GraphResponse::error(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
            );
        };
        cursor.extra = Some(format!("{s}|{e}"));
    }
    let window: Vec<i64> = cursor
        .extra
        .as_deref()
        .unwrap_or("")
        .split('|')
        .filter_map(|x| x.parse().ok())
        .collect();
    let (from, to) = (
        window.first().copied().unwrap_or(0),
        window.get(1).copied().unwrap_or(0),
    );
    state.tenant.with_mailbox(cell, |mb| {
        let removed = mb.event_log.since(cursor.since).map(|it| {
            it.map(|r| (i64::from(r.serial) << 20, json!({"@odata.type": "#microsoft.graph.event", "id": r.id, "@removed": {"reason": "deleted"}}))).collect::<Vec<_>>()
        });
        let mut live: Vec<LiveEntry<'_>> = Vec::new();
        for e in mb.events.iter().flatten() {
            if e.changed_seq <= cursor.since {
                continue;
            }
            let m = Arc::new(model(state, mb, owner, e));
            for (k, inst) in crate::calendar_series::instances(&m, from, to).into_iter().enumerate() {
                let m = m.clone();
                let f: Box<dyn Fn() -> Value + '_> = Box::new(move || crate::calendar_series::instance_json(state, mb, e, &m, &inst));
                live.push(((i64::from(e.serial) << 20) | i64::try_from(k).unwrap_or(0), e.changed_seq, f));
            }
        }
        crate::odata::run_delta(url, &format!("{graph}/$metadata#Collection(event)"), cursor, live, removed, "syncStateNotFound")
    })
}

/// Canonical JSON of every event and contact for snapshots: id → JSON.
pub fn snapshot_items(
    state: &SimState,
    mb: &Mailbox,
    owner: &Person,
) -> (Vec<(String, Value)>, Vec<(String, Value)>) {
    let events = mb.events.iter().flatten().map(|e| {
        let m = model(state, mb, owner, e);
        let mut v = m.json.clone();
        crate::calendar_series::snapshot_fields(state, mb, e, &m, &mut v);
        if let Value::Object(m) = &mut v {
            for k in [
                "@odata.etag",
                "changeKey",
                "createdDateTime",
                "lastModifiedDateTime",
                "id",
                "iCalUId",
                "uid",
                "webLink",
            ] {
                m.remove(k);
            }
        }
        (oid(state, OutlookKind::Event, mb.idx, e.serial, 0), v)
    });
    let contacts = mb.contacts.iter().flatten().map(|c| {
        let mut v = crate::contacts::contact_json_full(state, mb, c);
        if let Value::Object(m) = &mut v {
            for k in [
                "@odata.etag",
                "changeKey",
                "createdDateTime",
                "lastModifiedDateTime",
                "id",
                "parentFolderId",
            ] {
                m.remove(k);
            }
        }
        (oid(state, OutlookKind::Contact, mb.idx, c.serial, 0), v)
    });
    (events.collect(), contacts.collect())
}
