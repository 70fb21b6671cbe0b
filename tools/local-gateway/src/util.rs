//! Ids and time formats in API Gateway's shapes.

use service_auth::UnixTime;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        // Ids only, never secrets: fall back to the time.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8 ^ i as u8;
        }
    }
    b
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A request id: a random UUID (version 4), as API Gateway's `$context.requestId`.
pub fn request_id() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `$context.extendedRequestId`: 16 characters of base64.
pub fn extended_request_id() -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = random_bytes::<15>();
    let mut s: String = b.iter().map(|x| A[(*x as usize) % 64] as char).collect();
    s.push('=');
    s
}

/// An X-Ray trace id for time `now`: `1-{8 hex seconds}-{24 hex random}`.
pub fn xray_trace_id(now: UnixTime) -> String {
    format!("1-{:08x}-{}", now.0 as u32, hex(&random_bytes::<12>()))
}

/// A resource id as API Gateway shows it (6 characters), stable per route.
pub fn resource_id(route: &str) -> String {
    use sha2::{Digest, Sha256};
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    Sha256::digest(route.as_bytes())[..6]
        .iter()
        .map(|x| A[(*x as usize) % A.len()] as char)
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ` split into its parts.
fn parts(t: UnixTime) -> (String, String, String, String, String, String) {
    let s = t.to_rfc3339();
    (
        s[0..4].to_owned(),
        s[5..7].to_owned(),
        s[8..10].to_owned(),
        s[11..13].to_owned(),
        s[14..16].to_owned(),
        s[17..19].to_owned(),
    )
}

/// `$context.requestTime`: `29/Nov/2026:10:15:42 +0000`.
pub fn clf_time(t: UnixTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = parts(t);
    let m = MONTHS[mo.parse::<usize>().unwrap_or(1).clamp(1, 12) - 1];
    format!("{d}/{m}/{y}:{h}:{mi}:{s} +0000")
}

/// SigV4's `X-Amz-Date`: `20261129T101542Z`.
pub fn amz_date(t: UnixTime) -> String {
    let (y, mo, d, h, mi, s) = parts(t);
    format!("{y}{mo}{d}T{h}{mi}{s}Z")
}

/// Parses an `X-Amz-Date`.
pub fn parse_amz_date(s: &str) -> Option<UnixTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    if !s[..8]
        .bytes()
        .chain(s[9..15].bytes())
        .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    UnixTime::parse_rfc3339(&format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    ))
}

/// Percent-decodes `s` (`%XX` only; `+` stays `+`). Invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = h {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t = UnixTime(1_795_947_342);
        assert_eq!(clf_time(t), "29/Nov/2026:10:15:42 +0000");
        assert_eq!(amz_date(t), "20261129T101542Z");
        assert_eq!(parse_amz_date("20261129T101542Z"), Some(t));
        for bad in ["2026-11-29", "20261129T101542", "2026112xT101542Z", ""] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, request_id());
        assert_eq!(extended_request_id().len(), 16);
        let x = xray_trace_id(t);
        assert!(x.starts_with(&format!("1-{:08x}-", t.0)), "{x}");
        assert_eq!(x.len(), 35);
        assert_eq!(resource_id("/a").len(), 6);
        assert_eq!(resource_id("/a"), resource_id("/a"));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%40b.com"), "a@b.com");
        assert_eq!(percent_decode("a+b%2"), "a+b%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%"), "%");
    }
}
