//! Graph contacts as vCard 4.0 (RFC 6350) files, escaped and folded.

use serde_json::Value;

use super::ics::{escape_text, line};

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn compound(parts: &[Option<&str>]) -> String {
    parts
        .iter()
        .map(|p| escape_text(p.unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(";")
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A contact's Graph JSON as one vCard 4.0.
#[must_use]
pub fn contact_to_vcard(c: &Value) -> String {
    let mut out = String::new();
    line(&mut out, "BEGIN:VCARD");
    line(&mut out, "VERSION:4.0");
    let emails: Vec<&str> = c
        .get("emailAddresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get("address")?.as_str())
                .filter(|s| !s.trim().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let built: String = [s(c, "givenName"), s(c, "middleName"), s(c, "surname")]
        .iter()
        .flatten()
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let fn_ = s(c, "displayName")
        .map(str::to_owned)
        .or_else(|| Some(built).filter(|b| !b.is_empty()))
        .or_else(|| s(c, "companyName").map(str::to_owned))
        .or_else(|| emails.first().map(|e| (*e).to_owned()))
        .unwrap_or_else(|| "(no name)".to_owned());
    line(&mut out, &format!("FN:{}", escape_text(&fn_)));
    line(
        &mut out,
        &format!(
            "N:{}",
            compound(&[
                s(c, "surname"),
                s(c, "givenName"),
                s(c, "middleName"),
                s(c, "title"),
                s(c, "generation"),
            ])
        ),
    );
    if let Some(nick) = s(c, "nickName") {
        line(&mut out, &format!("NICKNAME:{}", escape_text(nick)));
    }
    for e in emails {
        line(&mut out, &format!("EMAIL:{}", escape_text(e)));
    }
    if let Some(m) = s(c, "mobilePhone") {
        line(&mut out, &format!("TEL;TYPE=cell:{}", escape_text(m)));
    }
    for p in strings(c, "businessPhones") {
        line(&mut out, &format!("TEL;TYPE=work:{}", escape_text(&p)));
    }
    for p in strings(c, "homePhones") {
        line(&mut out, &format!("TEL;TYPE=home:{}", escape_text(&p)));
    }
    if s(c, "companyName").is_some() || s(c, "department").is_some() {
        line(
            &mut out,
            &format!(
                "ORG:{}",
                compound(&[s(c, "companyName"), s(c, "department")])
            ),
        );
    }
    if let Some(t) = s(c, "jobTitle") {
        line(&mut out, &format!("TITLE:{}", escape_text(t)));
    }
    for (key, kind) in [
        ("homeAddress", "home"),
        ("businessAddress", "work"),
        ("otherAddress", ""),
    ] {
        let Some(a) = c.get(key).filter(|a| a.is_object()) else {
            continue;
        };
        let parts = [
            s(a, "street"),
            s(a, "city"),
            s(a, "state"),
            s(a, "postalCode"),
            s(a, "countryOrRegion"),
        ];
        if parts.iter().all(Option::is_none) {
            continue;
        }
        let ty = if kind.is_empty() {
            String::new()
        } else {
            format!(";TYPE={kind}")
        };
        line(&mut out, &format!("ADR{ty}:;;{}", compound(&parts)));
    }
    if let Some(b) = s(c, "birthday") {
        let digits: String = b.chars().take(10).filter(char::is_ascii_digit).collect();
        if digits.len() == 8 {
            line(&mut out, &format!("BDAY:{digits}"));
        }
    }
    if let Some(n) = s(c, "personalNotes") {
        line(&mut out, &format!("NOTE:{}", escape_text(n)));
    }
    if let Some(id) = s(c, "id") {
        line(&mut out, &format!("UID:{}", escape_text(id)));
    }
    line(&mut out, "END:VCARD");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contacts_become_escaped_vcards() {
        let c = json!({
            "id": "AAMk", "displayName": "Smith, Ann", "givenName": "Ann", "surname": "Smith",
            "emailAddresses": [{"name": "Ann", "address": "ann@contoso.com"}, {"address": ""}],
            "mobilePhone": "+1 555 0100", "businessPhones": ["+1 555 0101"], "homePhones": [],
            "companyName": "Contoso; Ltd", "department": "R&D", "jobTitle": "Lead",
            "businessAddress": {"street": "1 Main St\nSuite 2", "city": "Redmond", "state": "WA", "postalCode": "98052", "countryOrRegion": "USA"},
            "homeAddress": {},
            "birthday": "1974-07-22T11:59:00Z", "personalNotes": "likes tea, not coffee"
        });
        let v = contact_to_vcard(&c);
        assert!(
            v.starts_with("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Smith\\, Ann\r\n"),
            "{v}"
        );
        assert!(v.contains("N:Smith;Ann;;;\r\n"));
        assert!(v.contains("EMAIL:ann@contoso.com\r\n"));
        assert_eq!(v.matches("EMAIL:").count(), 1);
        assert!(v.contains("TEL;TYPE=cell:+1 555 0100\r\n"));
        assert!(v.contains("ORG:Contoso\\; Ltd;R&D\r\n"));
        assert!(v.contains("ADR;TYPE=work:;;1 Main St\\nSuite 2;Redmond;WA;98052;USA\r\n"));
        assert!(!v.contains("TYPE=home:"));
        assert!(v.contains("BDAY:19740722\r\n"));
        assert!(v.contains("NOTE:likes tea\\, not coffee\r\n"));
        assert!(v.ends_with("END:VCARD\r\n"));
        let empty = contact_to_vcard(&json!({}));
        assert!(empty.contains("FN:(no name)\r\n"));
    }
}
