//! A small document model — headings, paragraphs, lists and tables of
//! text, code and bold spans — written out as Markdown or as HTML. The
//! data map is built once as a [`Doc`], so both forms say the same thing,
//! and every string from a policy is escaped by the writer, never by the
//! map.

/// A run of inline text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Text(String),
    /// A name or value from the policy, shown as code.
    Code(String),
    Strong(String),
}

/// Rich text: spans in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line(pub Vec<Span>);

impl Line {
    pub fn new() -> Self {
        Line(Vec::new())
    }

    pub fn text(mut self, s: impl Into<String>) -> Self {
        self.0.push(Span::Text(s.into()));
        self
    }

    pub fn code(mut self, s: impl Into<String>) -> Self {
        self.0.push(Span::Code(s.into()));
        self
    }

    pub fn strong(mut self, s: impl Into<String>) -> Self {
        self.0.push(Span::Strong(s.into()));
        self
    }

    /// `items` as code spans separated by `, `.
    pub fn codes<S: AsRef<str>>(mut self, items: &[S]) -> Self {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self = self.text(", ");
            }
            self = self.code(item.as_ref());
        }
        self
    }
}

impl From<&str> for Line {
    fn from(s: &str) -> Self {
        Line::new().text(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// Level (1–3), its text and the anchor it can be linked by.
    Heading(u8, Line, Option<String>),
    Para(Line),
    Bullets(Vec<Line>),
    Table {
        head: Vec<&'static str>,
        rows: Vec<Vec<Line>>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doc {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Doc {
    pub fn push(&mut self, block: Block) {
        self.blocks.push(block);
    }

    /// The document as GitHub-flavoured Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for block in &self.blocks {
            match block {
                Block::Heading(level, line, anchor) => {
                    if let Some(a) = anchor {
                        out.push_str(&format!("<a id=\"{}\"></a>\n\n", html_escape(a)));
                    }
                    out.push_str(&"#".repeat(usize::from(*level)));
                    out.push(' ');
                    md_line(line, &mut out, false);
                    out.push('\n');
                }
                Block::Para(line) => {
                    md_line(line, &mut out, false);
                    out.push('\n');
                }
                Block::Bullets(items) => {
                    for item in items {
                        out.push_str("- ");
                        md_line(item, &mut out, false);
                        out.push('\n');
                    }
                }
                Block::Table { head, rows } => {
                    out.push_str(&format!("| {} |\n", head.join(" | ")));
                    out.push_str(&format!("|{}\n", "---|".repeat(head.len())));
                    for row in rows {
                        out.push('|');
                        for cell in row {
                            out.push(' ');
                            md_line(cell, &mut out, true);
                            out.push_str(" |");
                        }
                        out.push('\n');
                    }
                }
            }
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    }

    /// The document as one HTML page, styles inline, no script.
    pub fn html(&self) -> String {
        let mut out =
            String::from("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        out.push_str(&format!("<title>{}</title>\n", html_escape(&self.title)));
        out.push_str(concat!(
            "<style>\n",
            "body{font:15px/1.5 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}\n",
            "table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #ccd;padding:.3rem .6rem;text-align:left;vertical-align:top}\n",
            "th{background:#f0f2f5}code{font:13px ui-monospace,monospace;background:#f3f4f6;padding:0 .2rem;overflow-wrap:anywhere}\n",
            "h2{margin-top:2rem;border-bottom:1px solid #dde}h1 code,h2 code{font-size:inherit;background:none;padding:0}\n",
            "@media print{body{margin:0;max-width:none}}\n",
            "</style>\n</head>\n<body>\n"
        ));
        for block in &self.blocks {
            match block {
                Block::Heading(level, line, anchor) => {
                    let id = anchor
                        .as_ref()
                        .map(|a| format!(" id=\"{}\"", html_escape(a)))
                        .unwrap_or_default();
                    out.push_str(&format!("<h{level}{id}>"));
                    html_line(line, &mut out);
                    out.push_str(&format!("</h{level}>\n"));
                }
                Block::Para(line) => {
                    html_element("p", line, &mut out);
                    out.push('\n');
                }
                Block::Bullets(items) => {
                    out.push_str("<ul>\n");
                    for item in items {
                        html_element("li", item, &mut out);
                        out.push('\n');
                    }
                    out.push_str("</ul>\n");
                }
                Block::Table { head, rows } => {
                    out.push_str("<table>\n<thead><tr>");
                    for h in head {
                        out.push_str(&format!("<th scope=\"col\">{}</th>", html_escape(h)));
                    }
                    out.push_str("</tr></thead>\n<tbody>\n");
                    for row in rows {
                        out.push_str("<tr>");
                        for cell in row {
                            html_element("td", cell, &mut out);
                        }
                        out.push_str("</tr>\n");
                    }
                    out.push_str("</tbody>\n</table>\n");
                }
            }
        }
        out.push_str("</body>\n</html>\n");
        out
    }
}

fn md_line(line: &Line, out: &mut String, in_table: bool) {
    for span in &line.0 {
        match span {
            Span::Text(s) => md_text(s, out),
            Span::Strong(s) => {
                out.push_str("**");
                md_text(s, out);
                out.push_str("**");
            }
            Span::Code(s) => md_code(s, out, in_table),
        }
    }
}

/// Text with every character Markdown could read as markup escaped, and
/// line breaks (which would end a table row or a list item) as spaces.
fn md_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|' | '~' | '&' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

/// A code span fenced by more backticks than it holds in a row. In a
/// table a `|` still ends the cell (GitHub's rule), so it is escaped there.
fn md_code(s: &str, out: &mut String, in_table: bool) {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let longest = clean.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = clean.starts_with('`') || clean.ends_with('`') || clean.starts_with(' ');
    out.push_str(&fence);
    if pad {
        out.push(' ');
    }
    for c in clean.chars() {
        if in_table && c == '|' {
            out.push('\\');
        }
        out.push(c);
    }
    if pad {
        out.push(' ');
    }
    out.push_str(&fence);
}

/// `<tag>line</tag>`.
fn html_element(tag: &str, line: &Line, out: &mut String) {
    out.push_str(&format!("<{tag}>"));
    html_line(line, out);
    out.push_str(&format!("</{tag}>"));
}

fn html_line(line: &Line, out: &mut String) {
    for span in &line.0 {
        match span {
            Span::Text(s) => out.push_str(&html_escape(s)),
            Span::Code(s) => {
                out.push_str("<code>");
                out.push_str(&html_escape(s));
                out.push_str("</code>");
            }
            Span::Strong(s) => {
                out.push_str("<strong>");
                out.push_str(&html_escape(s));
                out.push_str("</strong>");
            }
        }
    }
}

/// Text safe in HTML content and in a quoted attribute.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_escapes_what_it_could_read_as_markup() {
        let mut doc = Doc::default();
        doc.push(Block::Table {
            head: vec!["a"],
            rows: vec![vec![Line::new().text("x|*y*").code("p|`q`")]],
        });
        let md = doc.markdown();
        assert!(md.contains(r"x\|\*y\*"), "{md}");
        assert!(md.contains(r"`` p\|`q` ``"), "{md}");
        // Every row still has exactly its cell separators.
        let row = md.lines().nth(2).unwrap_or_default();
        assert_eq!(row.matches(" |").count(), 1, "{row}");
    }

    #[test]
    fn html_escapes_markup_in_every_span() {
        let mut doc = Doc {
            title: "<t>".into(),
            ..Doc::default()
        };
        doc.push(Block::Para(
            Line::new().text("<b>").code("\"'&").strong("<i>"),
        ));
        let html = doc.html();
        assert!(html.contains("<title>&lt;t&gt;</title>"));
        assert!(html
            .contains("<p>&lt;b&gt;<code>&quot;&#39;&amp;</code><strong>&lt;i&gt;</strong></p>"));
        assert!(!html.contains("<b>") && !html.contains("<i>"));
    }

    #[test]
    fn line_breaks_cannot_end_a_row_or_item() {
        let mut doc = Doc::default();
        doc.push(Block::Bullets(vec![Line::new()
            .text("a\nb")
            .code("c\r\nd")]));
        assert_eq!(doc.markdown(), "- a b`c  d`\n");
    }
}
