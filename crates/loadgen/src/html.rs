//! Just enough HTML to submit a login form the way a browser would: find `<form>` elements,
//! their attributes and the `<input>`/`<button>` controls inside, in any attribute order and
//! quoting style. String scanning, no HTML parser.

#[derive(Debug, Default)]
pub struct Element {
    /// Attribute names lower-cased, values with character references decoded.
    pub attrs: Vec<(String, String)>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.attrs.iter().any(|(k, _)| k == name)
    }
}

#[derive(Debug)]
pub struct Control {
    /// `input` or `button`.
    pub tag: &'static str,
    pub element: Element,
}

impl Control {
    pub fn name(&self) -> Option<&str> {
        self.element.attr("name").filter(|n| !n.is_empty())
    }

    pub fn kind(&self) -> String {
        let default = if self.tag == "button" {
            "submit"
        } else {
            "text"
        };
        self.element
            .attr("type")
            .unwrap_or(default)
            .to_ascii_lowercase()
    }

    pub fn is_submit(&self) -> bool {
        matches!(self.kind().as_str(), "submit" | "image")
    }
}

#[derive(Debug)]
pub struct Form {
    pub element: Element,
    pub controls: Vec<Control>,
}

impl Form {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.element.attr(name)
    }

    pub fn control(&self, name: &str) -> Option<&Control> {
        self.controls.iter().find(|c| c.name() == Some(name))
    }

    /// The name/value pairs a browser submits when `submitter` (a submit control, by id or
    /// name; `None`: the first submit control) is clicked. Hidden and text inputs are included
    /// with their values, checkboxes and radios only when checked, disabled controls never.
    pub fn successful_values(&self, submitter: Option<&str>) -> Vec<(String, String)> {
        let clicked = self.controls.iter().position(|c| {
            c.is_submit()
                && match submitter {
                    Some(s) => c.element.attr("id") == Some(s) || c.name() == Some(s),
                    None => true,
                }
        });
        let mut out = Vec::new();
        for (i, c) in self.controls.iter().enumerate() {
            let Some(name) = c.name() else { continue };
            if c.element.has("disabled") {
                continue;
            }
            let kind = c.kind();
            let include = match kind.as_str() {
                "submit" | "image" => Some(i) == clicked,
                "button" | "reset" | "file" => false,
                "checkbox" | "radio" => c.element.has("checked"),
                _ => true,
            };
            if include {
                let default = if matches!(kind.as_str(), "checkbox" | "radio") {
                    "on"
                } else {
                    ""
                };
                let value = c.element.attr("value").unwrap_or(default);
                out.push((name.to_owned(), value.to_owned()));
            }
        }
        out
    }
}

/// All forms of a page, in document order.
pub fn forms(html: &str) -> Vec<Form> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(start) = find_tag(&lower, pos, "form") {
        let (element, content_start) = parse_attrs(html, start + "<form".len());
        let content_end = lower[content_start..]
            .find("</form")
            .map_or(html.len(), |i| content_start + i);
        let controls = controls(html, &lower, content_start, content_end);
        out.push(Form { element, controls });
        pos = content_end;
    }
    out
}

fn controls(html: &str, lower: &str, from: usize, to: usize) -> Vec<Control> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < to {
        let Some(i) = lower[pos..to].find('<') else {
            break;
        };
        let at = pos + i;
        if lower[at..].starts_with("<!--") {
            pos = lower[at..].find("-->").map_or(to, |j| at + j + 3);
            continue;
        }
        let tag = ["input", "button"].into_iter().find(|t| {
            lower[at + 1..].starts_with(t) && is_tag_end(lower.as_bytes().get(at + 1 + t.len()))
        });
        match tag {
            Some(tag) => {
                let (element, end) = parse_attrs(html, at + 1 + tag.len());
                out.push(Control { tag, element });
                pos = end;
            }
            None => pos = at + 1,
        }
    }
    out
}

/// The next `<name` tag (followed by whitespace, `>` or `/`) at or after `from`.
fn find_tag(lower: &str, mut from: usize, name: &str) -> Option<usize> {
    let open = format!("<{name}");
    while let Some(i) = lower[from..].find(&open) {
        let at = from + i;
        if is_tag_end(lower.as_bytes().get(at + open.len())) {
            return Some(at);
        }
        from = at + open.len();
    }
    None
}

fn is_tag_end(b: Option<&u8>) -> bool {
    matches!(
        b,
        Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'>' | b'/')
    )
}

/// Parses attributes from `from` (just after the tag name) to the closing `>`; returns them and
/// the offset after the `>`.
fn parse_attrs(html: &str, from: usize) -> (Element, usize) {
    let b = html.as_bytes();
    let mut i = from;
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return (Element { attrs }, b.len());
        }
        if b[i] == b'>' {
            return (Element { attrs }, i + 1);
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let quote = b[i];
                let start = i + 1;
                let end = b[start..]
                    .iter()
                    .position(|&c| c == quote)
                    .map_or(b.len(), |j| start + j);
                value = decode_entities(&html[start..end]);
                i = (end + 1).min(b.len());
            } else {
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = decode_entities(&html[start..i]);
            }
        }
        if !name.is_empty() && !attrs.iter().any(|(k, _)| *k == name) {
            attrs.push((name, value));
        }
    }
}

/// Decodes the character references that templates produce (`&amp;`, `&#39;`, `&#x2F;`, …).
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text content of the element with this `id` (tags stripped, whitespace collapsed), e.g.
/// Keycloak's `input-error` message.
pub fn text_of_id(html: &str, id: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let needles = [
        format!("id=\"{id}\""),
        format!("id='{id}'"),
        format!("id={id}"),
    ];
    let at = needles.iter().find_map(|n| lower.find(n.as_str()))?;
    let open_end = at + lower[at..].find('>')? + 1;
    let mut depth_text = String::new();
    let mut in_tag = false;
    for c in html[open_end..].chars().take(2000) {
        match c {
            '<' => {
                in_tag = true;
                // Stop at the first closing tag after some text.
                if !depth_text.trim().is_empty() {
                    break;
                }
            }
            '>' => in_tag = false,
            c if !in_tag => depth_text.push(c),
            _ => {}
        }
    }
    let text = decode_entities(&depth_text.split_whitespace().collect::<Vec<_>>().join(" "));
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYCLOAK_LIKE: &str = r#"<!DOCTYPE html><html><body>
<div id="kc-content">
  <FORM method='post' ACTION="/realms/bench/login-actions/authenticate?session_code=a&amp;execution=b&amp;tab_id=c" id="kc-form-login" onsubmit="login.disabled = true; return true;">
    <!-- <input name="commented" value="x"> -->
    <input tabindex="1" id="username" class="pf-c-form-control" name="username" value="" type="text" autofocus autocomplete="off" />
    <input tabindex="2" id="password" class="pf-c-form-control" name="password" type="password" autocomplete="off"/>
    <input type=hidden value="tok&#x2F;en&#39;" name=csrf>
    <input type="checkbox" name="rememberMe" id="rememberMe">
    <input type="hidden" name="disabled-one" value="1" disabled>
    <input tabindex="4" class="pf-c-button" name="login" id="kc-login" type="submit" value="Sign In"/>
  </FORM>
  <form id="other" action="/x"><button name="b" value="v">B</button></form>
  <span id="input-error" aria-live="polite">
      Invalid username or password.
  </span>
</div></body></html>"#;

    #[test]
    fn finds_keycloak_login_form() {
        let forms = forms(KEYCLOAK_LIKE);
        assert_eq!(forms.len(), 2);
        let f = &forms[0];
        assert_eq!(f.attr("id"), Some("kc-form-login"));
        assert_eq!(f.attr("method"), Some("post"));
        assert_eq!(
            f.attr("action"),
            Some("/realms/bench/login-actions/authenticate?session_code=a&execution=b&tab_id=c")
        );
        let values = f.successful_values(Some("kc-login"));
        let names: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["username", "password", "csrf", "login"]);
        assert_eq!(values[2].1, "tok/en'");
        assert_eq!(values[3].1, "Sign In");
        assert_eq!(
            forms[1].successful_values(None),
            [("b".to_owned(), "v".to_owned())]
        );
        assert_eq!(
            text_of_id(KEYCLOAK_LIKE, "input-error").as_deref(),
            Some("Invalid username or password.")
        );
    }

    #[test]
    fn finds_oidc_provider_dev_login_form() {
        let html = r#"<div class="login-card"><form autocomplete="off" action="/interaction/abc/login" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
  <input required type="password" name="password" placeholder="and password" >

  <button type="submit" class="login login-submit">Sign-in</button>
</form></div>"#;
        let forms = forms(html);
        assert_eq!(forms.len(), 1);
        assert_eq!(forms[0].attr("action"), Some("/interaction/abc/login"));
        assert!(forms[0].control("login").is_some());
        let values = forms[0].successful_values(None);
        assert_eq!(values.len(), 3);
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("a&amp;b&lt;&#65;&#x42;&bogus;&"),
            "a&b<AB&bogus;&"
        );
    }
}
