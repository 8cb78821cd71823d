use super::*;
use crate::cli::stats::fixtures;

/// Checks that markup is well-formed: tags balanced and properly nested,
/// attribute values quoted, every `&` an entity. Returns the element
/// names in document order.
fn well_formed(s: &str) -> Result<Vec<String>, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find(['<', '&']) {
        let text = &rest[at..];
        if text.starts_with('&') {
            let end = text.find(';').ok_or("bare &")?;
            let name = &text[1..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '#') {
                return Err(format!("bare & before {:?}", &text[..end.min(20)]));
            }
            rest = &text[end + 1..];
            continue;
        }
        if let Some(t) = text.strip_prefix("<!--") {
            rest = &t[t.find("-->").ok_or("open comment")? + 3..];
            continue;
        }
        if text.starts_with("<!") || text.starts_with("<?") {
            rest = &text[text.find('>').ok_or("open declaration")? + 1..];
            continue;
        }
        // A tag: up to the first '>' outside quotes.
        let mut quote = None;
        let mut end = None;
        for (i, c) in text.char_indices().skip(1) {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '<') => return Err("< inside a tag".into()),
                (None, '>') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or("unterminated tag")?;
        let inner = &text[1..end];
        rest = &text[end + 1..];
        if let Some(name) = inner.strip_prefix('/') {
            let name = name.trim();
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let self_closing = inner.ends_with('/');
        let name: String = inner
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        if name.is_empty() {
            return Err("empty tag".into());
        }
        // Attributes: name="value" pairs.
        let attrs = inner[name.len()..].trim_end_matches('/');
        let mut a = attrs.trim();
        while !a.is_empty() {
            let eq = a
                .find('=')
                .ok_or_else(|| format!("attribute without value in <{name}>"))?;
            let v = a[eq + 1..].trim_start();
            let q = v
                .chars()
                .next()
                .filter(|c| *c == '"' || *c == '\'')
                .ok_or("unquoted attribute")?;
            let close = v[1..].find(q).ok_or("unterminated attribute")?;
            a = v[close + 2..].trim_start();
        }
        seen.push(name.clone());
        if !self_closing {
            stack.push(name);
        }
    }
    if stack.is_empty() {
        Ok(seen)
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

#[test]
fn checker_rejects_bad_markup() {
    assert!(well_formed("<a><b></a></b>").is_err());
    assert!(well_formed("<a>").is_err());
    assert!(well_formed("<a x=1></a>").is_err());
    assert!(well_formed("<a>&</a>").is_err());
    assert!(well_formed("<a x=\"1\"><b/>&amp;</a>").is_ok());
}

#[test]
fn html_is_well_formed_and_self_contained() {
    let html = html_regional(&fixtures::regional());
    let elements = well_formed(&html).unwrap_or_else(|e| panic!("{e}"));
    for bad in ["script", "link", "img", "iframe", "object", "embed"] {
        assert!(!elements.iter().any(|e| e == bad), "<{bad}> in the page");
    }
    for bad in ["src=", "href=", "url(", "@import", "@font-face"] {
        assert!(!html.contains(bad), "{bad} in the page");
    }
    // One chart per dimension of the victims table.
    assert_eq!(elements.iter().filter(|e| *e == "svg").count(), 4);
    // Member populations' sources are escaped, not markup.
    assert!(html.contains("INE &lt;HN&gt; &amp; co"));
    assert!(!html.contains("<HN>"));
}

/// The text of the SVG `<text>` elements.
fn svg_texts(html: &str) -> Vec<String> {
    html.split("<text")
        .skip(1)
        .filter_map(|t| {
            let start = t.find('>')? + 1;
            let end = t.find("</text>")?;
            Some(t[start..end].trim().to_string())
        })
        .collect()
}

#[test]
fn charts_carry_the_figures() {
    let html = html_regional(&fixtures::regional());
    let texts = svg_texts(&html);
    // By sex: female cr 10, gt 20, hn 9; male cr 5, gt 6, hn 0.
    for v in ["10", "20", "9", "5", "6"] {
        assert!(
            texts.iter().any(|t| t == v),
            "no {v} in the charts: {texts:?}"
        );
    }
    // By age group: hn's children are suppressed (secondary): labelled, no bar.
    assert!(texts.iter().any(|t| t == "s*"));
    // Categories and members are named.
    for l in [
        "Mujer",
        "Menor de 18",
        "Explotación sexual",
        "cr",
        "gt",
        "hn",
    ] {
        assert!(texts.iter().any(|t| t == l), "no {l} in the charts");
    }
    // The table carries the bound.
    assert!(html.contains("≥ 41"));
}
