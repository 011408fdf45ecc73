//! The edge's one log line per request, JSON so a log pipeline can count the
//! hit rate (`cache` = `hit` / `miss`) and join lines with the origin's by
//! `request_id`.

use serde::Serialize;

#[derive(Serialize)]
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    /// The path only: queries are long and say nothing the key does not.
    pub path: &'a str,
    pub status: u16,
    /// `hit`, `miss`, or absent when no image was looked up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'a str>,
    /// Redirect mode: what the known-present index said (`hit`, `miss`, `stale`, `off`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<&'a str>,
    pub ms: f64,
}

pub fn access_line(line: &AccessLine<'_>) -> String {
    #[derive(Serialize)]
    struct Tagged<'a> {
        msg: &'static str,
        #[serde(flatten)]
        line: &'a AccessLine<'a>,
    }
    serde_json::to_string(&Tagged {
        msg: "imgate-edge request",
        line,
    })
    .expect("strings and numbers always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_json_object_per_line_whatever_the_path() {
        let line = access_line(&AccessLine {
            request_id: "abc",
            method: "GET",
            path: "/og/x.png\n{\"forged\":1}",
            status: 200,
            cache: Some("hit"),
            index: None,
            ms: 1.5,
        });
        assert!(!line.contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["cache"], "hit");
        assert_eq!(parsed["request_id"], "abc");
        assert_eq!(parsed["path"], "/og/x.png\n{\"forged\":1}");
        let no_lookup = access_line(&AccessLine {
            cache: None,
            status: 400,
            ..sample()
        });
        assert!(!no_lookup.contains("cache"), "{no_lookup}");
        assert!(no_lookup.starts_with(r#"{"msg":"imgate-edge request","#));
    }

    fn sample() -> AccessLine<'static> {
        AccessLine {
            request_id: "r",
            method: "GET",
            path: "/",
            status: 200,
            cache: None,
            index: None,
            ms: 0.0,
        }
    }
}
