//! Reading the `rel="next"` target out of `Link` headers (RFC 8288).
//!
//! Greenhouse sends `Link: <https://harvest.greenhouse.io/v3/jobs?cursor=...>; rel="next"` and
//! an empty `Link` on the last page. The parser also accepts several links in one header or
//! across headers, `rel` without quotes, other parameters, and several relation types in one
//! `rel` (`rel="next last"`).

use reqwest::header::{HeaderMap, LINK};

/// Returns the target of the first link whose relation types include `next`, exactly as
/// written between `<` and `>`. Returns `None` when there is no such link, which marks the
/// last page.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(next_in_header)
}

fn next_in_header(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];

        // The parameters run up to the next link, which starts with `<`. Quoted parameter
        // values could contain `<`, but a `rel` value never does.
        let after = &rest[close + 1..];
        let params_end = after.find('<').unwrap_or(after.len());
        if has_next_relation(&after[..params_end]) {
            return Some(target.trim().to_owned());
        }
        rest = &after[params_end..];
    }
}

fn has_next_relation(params: &str) -> bool {
    params
        .split([';', ','])
        .filter_map(|param| param.split_once('='))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("rel"))
        .any(|(_, value)| {
            value
                .trim()
                .trim_matches('"')
                .split_ascii_whitespace()
                .any(|relation| relation.eq_ignore_ascii_case("next"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(LINK, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn greenhouse_next_link_read_as_written() {
        let value = "<https://harvest.greenhouse.io/v3/jobs?cursor=eyJ9%3D>; rel=\"next\"";
        assert_eq!(
            next_link(&headers(&[value])).as_deref(),
            Some("https://harvest.greenhouse.io/v3/jobs?cursor=eyJ9%3D")
        );
    }

    #[test]
    fn empty_or_missing_link_is_last_page() {
        assert_eq!(next_link(&headers(&[""])), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn next_found_among_several_links() {
        let value = "<https://x.test/a?cursor=1>; rel=\"prev\", <https://x.test/a?cursor=2>; rel=next, \
                     <https://x.test/a?cursor=9>; rel=\"last\"";
        assert_eq!(next_link(&headers(&[value])).as_deref(), Some("https://x.test/a?cursor=2"));
    }

    #[test]
    fn next_found_in_second_header() {
        let found = next_link(&headers(&["<https://x.test/p>; rel=prev", "<https://x.test/n>; REL=\"Next\""]));
        assert_eq!(found.as_deref(), Some("https://x.test/n"));
    }

    #[test]
    fn next_among_several_relation_types() {
        let value = "<https://x.test/n>; title=\"more\"; rel=\"next last\"";
        assert_eq!(next_link(&headers(&[value])).as_deref(), Some("https://x.test/n"));
    }

    #[test]
    fn prev_only_is_last_page() {
        assert_eq!(next_link(&headers(&["<https://x.test/p>; rel=\"prev\""])), None);
    }

    #[test]
    fn unclosed_target_is_ignored() {
        assert_eq!(next_link(&headers(&["<https://x.test/n; rel=\"next\""])), None);
    }
}
