//! The line scanner behind [`SourceIndex`]: block structure by indentation, flow collections by char.

use std::rc::Rc;

use super::index::{Node, Pos, Raw, SourceIndex, Style, join};

/// How deep the scanner follows nesting. [`super::limits::check`] refuses deeper documents
/// before the scanner runs; this guard keeps the scanner's own recursion bounded even on
/// text it reads differently from the YAML parser.
const MAX_SCAN_DEPTH: usize = 2 * super::limits::MAX_DEPTH;
/// Nodes indexed at most; lookups past them come back empty (a coarser location).
const MAX_SCAN_NODES: usize = 100_000;

/// Index every node of `text` that the scanner can follow.
pub(super) fn scan(text: &str) -> SourceIndex {
    let mut scanner = Scanner {
        lines: text.lines().map(|l| l.chars().collect()).collect(),
        index: SourceIndex::default(),
        stack: Vec::new(),
        pending: None,
        depth: 0,
    };
    scanner.run();
    scanner.index
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Seq,
}

#[derive(Debug)]
struct Frame {
    indent: usize,
    path: String,
    kind: Kind,
    next: usize,
}

struct Scanner {
    /// Shared, so that a method can hold its line while it updates the index.
    lines: Vec<Rc<[char]>>,
    index: SourceIndex,
    stack: Vec<Frame>,
    /// A key or item whose value starts on a later line, and the indent it must exceed.
    pending: Option<(String, usize)>,
    /// Current recursion depth (items on one line, nested flow collections).
    depth: usize,
}

fn indent_of(line: &[char]) -> usize {
    line.iter().take_while(|c| **c == ' ').count()
}

fn is_dash(line: &[char], c: usize) -> bool {
    line.get(c) == Some(&'-') && matches!(line.get(c + 1), None | Some(' ') | Some('\t'))
}

fn skip_blanks(line: &[char], mut c: usize) -> usize {
    while matches!(line.get(c), Some(' ') | Some('\t')) {
        c += 1;
    }
    c
}

fn is_comment_or_end(line: &[char], c: usize) -> bool {
    matches!(line.get(c), None | Some('#'))
}

/// The end (exclusive) of a quoted scalar starting at `c`, on this line if it closes here.
fn close_quote(line: &[char], c: usize) -> Option<usize> {
    let quote = line[c];
    let mut j = c + 1;
    while j < line.len() {
        match line[j] {
            '\\' if quote == '"' => j += 2,
            '\'' if quote == '\'' && line.get(j + 1) == Some(&'\'') => j += 2,
            ch if ch == quote => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// A block mapping key starting at `c`: the key text and the index just after its `:`.
fn parse_key(line: &[char], c: usize) -> Option<(String, usize)> {
    let first = *line.get(c)?;
    let colon_at = |j: usize| {
        line.get(j) == Some(&':') && matches!(line.get(j + 1), None | Some(' ') | Some('\t'))
    };
    if first == '"' || first == '\'' {
        let end = close_quote(line, c)?;
        let j = skip_blanks(line, end);
        let inner: String = line[c + 1..end - 1].iter().collect();
        return colon_at(j).then(|| (unquote(&inner, first), j + 1));
    }
    if "[]{}|>*&!%@`#,?".contains(first) || (first == '-' && is_dash(line, c)) {
        return None;
    }
    let mut j = c;
    while j < line.len() {
        if colon_at(j) {
            let key: String = line[c..j].iter().collect();
            return Some((key.trim_end().to_string(), j + 1));
        }
        if line[j] == '#' && j > c && matches!(line[j - 1], ' ' | '\t') {
            return None;
        }
        j += 1;
    }
    None
}

fn unquote(inner: &str, quote: char) -> String {
    if quote == '\'' {
        inner.replace("''", "'")
    } else {
        inner.replace("\\\"", "\"").replace("\\\\", "\\")
    }
}

impl Scanner {
    fn run(&mut self) {
        let mut li = 0;
        while li < self.lines.len() {
            let line = &self.lines[li];
            let col = indent_of(line);
            if is_comment_or_end(line, col) {
                li += 1;
                continue;
            }
            let marker = |m: &str| {
                let s: String = line.iter().take(3).collect();
                s == m && matches!(line.get(3), None | Some(' ') | Some('\t'))
            };
            if col == 0 && (marker("---") || marker("...") || line[0] == '%') {
                self.stack.clear();
                self.pending = None;
                li += 1;
                continue;
            }
            li = self.entry(li, col);
        }
    }

    fn node_mut(&mut self, path: &str) -> &mut Node {
        if self.index.nodes.len() >= MAX_SCAN_NODES && !self.index.nodes.contains_key(path) {
            // Past the budget, writes go to a scratch node that is never looked up.
            return self.index.nodes.entry(String::new()).or_default();
        }
        self.index.nodes.entry(path.to_string()).or_default()
    }

    fn set_value_pos(&mut self, path: &str, pos: Pos) {
        let node = self.node_mut(path);
        node.value.get_or_insert(pos);
        node.end_line = node.end_line.max(pos.0);
    }

    /// A node that starts at `(li, col)` at the beginning of a line.
    fn entry(&mut self, li: usize, col: usize) -> usize {
        let line = Rc::clone(&self.lines[li]);
        let dash = is_dash(&line, col);
        if let Some((path, parent_indent)) = self.pending.take()
            && (col > parent_indent || (dash && col == parent_indent))
        {
            self.set_value_pos(&path, (li + 1, col + 1));
            let kind = if dash { Kind::Seq } else { Kind::Map };
            self.stack.push(Frame {
                indent: col,
                path,
                kind,
                next: 0,
            });
        }
        let want = if dash { Kind::Seq } else { Kind::Map };
        while let Some(top) = self.stack.last() {
            if top.indent > col || (top.indent == col && top.kind != want) {
                self.stack.pop();
            } else {
                break;
            }
        }
        if self.stack.last().is_none_or(|top| top.indent != col) {
            if !self.stack.is_empty() {
                return li + 1;
            }
            if !dash && matches!(line[col], '{' | '[') {
                let (end, _) = self.flow(li, col, "");
                return end + 1;
            }
            if !dash && parse_key(&line, col).is_none() {
                return li + 1;
            }
            self.stack.push(Frame {
                indent: col,
                path: String::new(),
                kind: want,
                next: 0,
            });
        }
        if dash {
            self.item(li, col)
        } else {
            self.key_line(li, col)
        }
    }

    /// `- ...` at `col`: the next item of the sequence on top of the stack.
    fn item(&mut self, li: usize, col: usize) -> usize {
        let frame = self.stack.last_mut().expect("a sequence frame");
        let path = format!("{}[{}]", frame.path, frame.next);
        frame.next += 1;
        let line = Rc::clone(&self.lines[li]);
        let c = skip_blanks(&line, col + 1);
        self.node_mut(&path);
        if is_comment_or_end(&line, c) {
            self.pending = Some((path, col));
            return li + 1;
        }
        self.set_value_pos(&path, (li + 1, c + 1));
        if is_dash(&line, c) {
            self.pending = Some((path, col));
            if self.depth >= MAX_SCAN_DEPTH {
                return li + 1;
            }
            self.depth += 1;
            let next = self.entry(li, c);
            self.depth -= 1;
            return next;
        }
        if parse_key(&line, c).is_some() {
            self.stack.push(Frame {
                indent: c,
                path,
                kind: Kind::Map,
                next: 0,
            });
            return self.key_line(li, c);
        }
        self.value(li, c, &path, col)
    }

    /// `key: ...` at `col`, in the mapping on top of the stack.
    fn key_line(&mut self, li: usize, col: usize) -> usize {
        let line = Rc::clone(&self.lines[li]);
        let Some((key, after)) = parse_key(&line, col) else {
            return li + 1;
        };
        let parent = self
            .stack
            .last()
            .map(|f| f.path.clone())
            .unwrap_or_default();
        let path = join(&parent, &key);
        let pos = (li + 1, col + 1);
        if self.index.nodes.get(&path).is_some_and(|n| n.key.is_some()) {
            self.index.duplicates.entry(path.clone()).or_insert(pos);
            return li + 1;
        }
        let node = self.node_mut(&path);
        node.key = Some(pos);
        node.end_line = li + 1;
        let c = skip_blanks(&line, after);
        self.value(li, c, &path, col)
    }

    /// The value of `path` starting at `(li, c)`; `parent_indent` is what continuation lines exceed.
    fn value(&mut self, li: usize, mut c: usize, path: &str, parent_indent: usize) -> usize {
        let line = Rc::clone(&self.lines[li]);
        let mut tagged = false;
        while matches!(line.get(c), Some('&') | Some('!')) {
            tagged |= line[c] == '!';
            while c < line.len() && !matches!(line[c], ' ' | '\t') {
                c += 1;
            }
            c = skip_blanks(&line, c);
        }
        if is_comment_or_end(&line, c) {
            self.pending = Some((path.to_string(), parent_indent));
            return li + 1;
        }
        self.set_value_pos(path, (li + 1, c + 1));
        let (style, end_li, text) = match line[c] {
            '|' | '>' => {
                let mut last = li;
                let mut next = li + 1;
                while next < self.lines.len() {
                    let l = &self.lines[next];
                    let ind = indent_of(l);
                    if ind == l.len() {
                        next += 1;
                    } else if ind > parent_indent {
                        last = next;
                        next += 1;
                    } else {
                        break;
                    }
                }
                (Style::Block, last, String::new())
            }
            '"' | '\'' => {
                let style = if line[c] == '"' {
                    Style::DoubleQuoted
                } else {
                    Style::SingleQuoted
                };
                let (end_li, end_c) = self.quoted_end(li, c);
                let text = if end_li == li {
                    line[c..end_c].iter().collect()
                } else {
                    line[c..].iter().collect()
                };
                (style, end_li, text)
            }
            '[' | '{' => {
                let (end_li, _) = self.flow(li, c, path);
                self.node_mut(path).raw = Some(Raw {
                    text: String::new(),
                    style: Style::Flow,
                    multiline: end_li > li,
                });
                self.node_mut(path).end_line = end_li + 1;
                return end_li + 1;
            }
            '*' => (Style::Alias, li, line[c..].iter().collect()),
            _ => {
                let mut end = line.len();
                for j in c..line.len() {
                    if line[j] == '#' && j > c && matches!(line[j - 1], ' ' | '\t') {
                        end = j;
                        break;
                    }
                }
                let text: String = line[c..end].iter().collect();
                (Style::Plain, li, text.trim_end().to_string())
            }
        };
        // Continuation lines of a multi-line plain or quoted scalar are indented further.
        let mut last = end_li;
        if style != Style::Block {
            let mut next = end_li + 1;
            while next < self.lines.len() {
                let l = &self.lines[next];
                let ind = indent_of(l);
                if ind == l.len() {
                    next += 1;
                } else if ind > parent_indent && l[ind] != '#' {
                    last = next;
                    next += 1;
                } else {
                    break;
                }
            }
        }
        let style = if tagged && style == Style::Plain {
            Style::Tagged
        } else {
            style
        };
        let node = self.node_mut(path);
        node.end_line = last + 1;
        node.raw = Some(Raw {
            text,
            style,
            multiline: last > li,
        });
        last + 1
    }

    /// The line and column just after a quoted scalar that may span lines.
    fn quoted_end(&self, li: usize, c: usize) -> (usize, usize) {
        let quote = self.lines[li][c];
        let (mut l, mut j) = (li, c + 1);
        while l < self.lines.len() {
            let line = &self.lines[l];
            while j < line.len() {
                match line[j] {
                    '\\' if quote == '"' => j += 2,
                    '\'' if quote == '\'' && line.get(j + 1) == Some(&'\'') => j += 2,
                    ch if ch == quote => return (l, j + 1),
                    _ => j += 1,
                }
            }
            l += 1;
            j = 0;
        }
        // Never closed (the YAML parser reports that): end at the end of the text.
        let last = self.lines.len().saturating_sub(1);
        (last, self.lines.get(last).map_or(0, |l| l.len()))
    }

    fn peek(&self, (l, c): (usize, usize)) -> Option<char> {
        let line = self.lines.get(l)?;
        Some(*line.get(c).unwrap_or(&'\n'))
    }

    fn skip_flow_space(&self, cur: &mut (usize, usize)) {
        while let Some(ch) = self.peek(*cur) {
            match ch {
                ' ' | '\t' => cur.1 += 1,
                '\n' => *cur = (cur.0 + 1, 0),
                '#' if cur.1 == 0 || matches!(self.lines[cur.0][cur.1 - 1], ' ' | '\t') => {
                    *cur = (cur.0 + 1, 0)
                }
                _ => break,
            }
        }
    }

    /// A flow collection starting at `(li, c)`; returns where it ends.
    fn flow(&mut self, li: usize, c: usize, path: &str) -> (usize, usize) {
        let mut cur = (li, c);
        self.flow_node(&mut cur, path);
        cur
    }

    fn flow_node(&mut self, cur: &mut (usize, usize), path: &str) {
        self.skip_flow_space(cur);
        let Some(open) = self.peek(*cur) else { return };
        let start = (cur.0 + 1, cur.1 + 1);
        self.set_value_pos(path, start);
        match open {
            '{' | '[' => {
                let close = if open == '{' { '}' } else { ']' };
                cur.1 += 1;
                let mut item = 0;
                loop {
                    self.skip_flow_space(cur);
                    let before = *cur;
                    match self.peek(*cur) {
                        None => return,
                        Some(ch) if ch == close => {
                            cur.1 += 1;
                            return;
                        }
                        Some(',') => cur.1 += 1,
                        Some(_) if self.depth >= MAX_SCAN_DEPTH => cur.1 += 1,
                        Some(_) if open == '[' => {
                            self.depth += 1;
                            self.flow_node(cur, &format!("{path}[{item}]"));
                            self.depth -= 1;
                            item += 1;
                        }
                        Some(_) => {
                            let key_pos = (cur.0 + 1, cur.1 + 1);
                            let key = self.flow_scalar(cur, true).0;
                            let key_path = join(path, &key);
                            self.node_mut(&key_path).key = Some(key_pos);
                            self.skip_flow_space(cur);
                            if self.peek(*cur) == Some(':') {
                                cur.1 += 1;
                                self.skip_flow_space(cur);
                                if !matches!(self.peek(*cur), Some(',') | Some('}') | None) {
                                    self.depth += 1;
                                    self.flow_node(cur, &key_path);
                                    self.depth -= 1;
                                }
                            }
                        }
                    }
                    if *cur == before {
                        cur.1 += 1;
                    }
                }
            }
            _ => {
                let (text, style) = self.flow_scalar(cur, false);
                let node = self.node_mut(path);
                node.end_line = cur.0 + 1;
                node.raw = Some(Raw {
                    text,
                    style,
                    multiline: cur.0 + 1 != start.0,
                });
            }
        }
    }

    /// A scalar inside a flow collection (a key when `key`); returns its text and style.
    fn flow_scalar(&mut self, cur: &mut (usize, usize), key: bool) -> (String, Style) {
        let line = Rc::clone(&self.lines[cur.0]);
        let c = cur.1;
        if matches!(line.get(c), Some('"') | Some('\'')) {
            let style = if line[c] == '"' {
                Style::DoubleQuoted
            } else {
                Style::SingleQuoted
            };
            let (end_l, end_c) = self.quoted_end(cur.0, c);
            let text: String = if end_l == cur.0 {
                line[c..end_c].iter().collect()
            } else {
                line[c..].iter().collect()
            };
            *cur = (end_l, end_c);
            let text = if key {
                let quote = line[c];
                let inner = text.strip_prefix(quote).unwrap_or(&text);
                unquote(inner.strip_suffix(quote).unwrap_or(inner), quote)
            } else {
                text
            };
            return (text, style);
        }
        let mut j = c;
        while j < line.len() {
            let ch = line[j];
            let next = line.get(j + 1).copied();
            if matches!(ch, ',' | '[' | ']' | '{' | '}')
                || (ch == ':'
                    && matches!(next, None | Some(' ') | Some(',') | Some(']') | Some('}')))
                || (ch == '#' && j > c && matches!(line[j - 1], ' ' | '\t'))
            {
                break;
            }
            j += 1;
        }
        cur.1 = j;
        let text: String = line[c..j].iter().collect();
        (text.trim_end().to_string(), Style::Plain)
    }
}
