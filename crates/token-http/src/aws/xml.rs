//! The little XML AWS's query APIs answer with: a tag's text, and the blocks of a repeated
//! element. Not a general parser: enough for `<Tag>text</Tag>` with entities, on answers bounded
//! by the client's size limit; never panics (fuzzed).

/// The text of the first `<name>…</name>` in `xml`, entities decoded.
pub fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(unescape(&xml[start..end]))
}

/// The inner text of every `<name>…</name>` in `xml`, in order (for `<member>` lists).
pub fn blocks<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// Decodes the five predefined entities and numeric character references.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(end) = after.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let entity = &after[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_blocks_and_entities() {
        let x = "<R><AccessKeyMetadata><member><AccessKeyId>AKIA1</AccessKeyId><Status>Active</Status></member>\
                 <member><AccessKeyId>AKIA2</AccessKeyId><Status>Inactive</Status></member></AccessKeyMetadata>\
                 <Message>a &lt;b&gt; &amp; &#39;c&#x27;</Message></R>";
        let m = blocks(x, "member");
        assert_eq!(m.len(), 2);
        assert_eq!(tag(m[1], "AccessKeyId").as_deref(), Some("AKIA2"));
        assert_eq!(tag(x, "Message").as_deref(), Some("a <b> & 'c'"));
        assert_eq!(tag(x, "Nope"), None);
        assert_eq!(unescape("&bogus; & &amp"), "&bogus; & &amp");
    }
}
