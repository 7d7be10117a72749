//! GRUB 2 script syntax: words, quoting, variables and blocks, parsed into
//! a small tree that `grub.rs` interprets.
//!
//! Only the subset `grub-mkconfig` and distribution tools emit is modelled:
//! commands, `if/elif/else/fi`, `menuentry`/`submenu`/`function` blocks.
//! Loops are skipped whole. The parser never fails: anything it cannot make
//! sense of becomes a plain command that the interpreter ignores, because a
//! boot menu with one odd line is still a boot menu.

/// One piece of a word: literal text, or a variable to expand. `quoted`
/// says whether it was inside quotes (then it is not split on spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var { name: String, quoted: bool },
}

/// A word before expansion. `bare` is the literal text when the word had
/// no quotes and no variables (how keywords and braces are recognised).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word {
    pub parts: Vec<Part>,
    pub bare: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(Word),
    Sep,
}

/// A statement of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    Cmd(Vec<Word>),
    If {
        branches: Vec<(Vec<Stmt>, Vec<Stmt>)>,
        otherwise: Vec<Stmt>,
    },
    /// `menuentry` or `submenu` with its arguments (title, options).
    Block {
        kind: BlockKind,
        args: Vec<Word>,
        body: Vec<Stmt>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Menuentry,
    Submenu,
    Function,
}

/// Input larger than this is not a boot menu; refuse to tokenise it.
pub const MAX_SCRIPT: usize = 4 << 20;
/// Nesting deeper than this is hostile; deeper blocks are dropped.
const MAX_DEPTH: usize = 32;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn lex(src: &str) -> Vec<Tok> {
    let src = &src[..src.len().min(MAX_SCRIPT)];
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut word: Option<Word> = None;
    let mut lit = String::new();
    let mut plain = true;

    fn flush_lit(word: &mut Option<Word>, lit: &mut String) {
        if !lit.is_empty() {
            word.get_or_insert_with(Word::default)
                .parts
                .push(Part::Lit(std::mem::take(lit)));
        }
    }
    fn end_word(toks: &mut Vec<Tok>, word: &mut Option<Word>, lit: &mut String, plain: &mut bool) {
        flush_lit(word, lit);
        if let Some(mut w) = word.take() {
            if *plain {
                let text: String = w
                    .parts
                    .iter()
                    .map(|p| if let Part::Lit(s) = p { s.as_str() } else { "" })
                    .collect();
                w.bare = Some(text);
            }
            toks.push(Tok::Word(w));
        }
        *plain = true;
    }
    // Read `$name` / `${name}` at chars[i] == '$'; returns the name and new index.
    let read_var = |i: usize| -> Option<(String, usize)> {
        let mut j = i + 1;
        if chars.get(j) == Some(&'{') {
            let start = j + 1;
            let end = chars[start..].iter().position(|&c| c == '}')? + start;
            return Some((chars[start..end].iter().collect(), end + 1));
        }
        if matches!(chars.get(j), Some('?') | Some('#') | Some('@') | Some('*')) {
            return Some((chars[j].to_string(), j + 1));
        }
        let start = j;
        while j < chars.len() && is_name_char(chars[j]) {
            j += 1;
        }
        (j > start).then(|| (chars[start..j].iter().collect(), j))
    };

    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\r' => {
                end_word(&mut toks, &mut word, &mut lit, &mut plain);
                i += 1;
            }
            '\n' | ';' => {
                end_word(&mut toks, &mut word, &mut lit, &mut plain);
                toks.push(Tok::Sep);
                i += 1;
            }
            '#' if word.is_none() && lit.is_empty() => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\\' => {
                match chars.get(i + 1) {
                    Some('\n') => {}
                    Some(&n) => {
                        lit.push(n);
                        plain = false;
                    }
                    None => {}
                }
                i += 2;
            }
            '\'' => {
                plain = false;
                word.get_or_insert_with(Word::default);
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    lit.push(chars[i]);
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                plain = false;
                word.get_or_insert_with(Word::default);
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    match chars[i] {
                        '\\' if matches!(chars.get(i + 1), Some('$' | '"' | '\\' | '\n')) => {
                            if chars[i + 1] != '\n' {
                                lit.push(chars[i + 1]);
                            }
                            i += 2;
                        }
                        '$' => match read_var(i) {
                            Some((name, next)) => {
                                flush_lit(&mut word, &mut lit);
                                word.get_or_insert_with(Word::default)
                                    .parts
                                    .push(Part::Var { name, quoted: true });
                                i = next;
                            }
                            None => {
                                lit.push('$');
                                i += 1;
                            }
                        },
                        ch => {
                            lit.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            '$' => match read_var(i) {
                Some((name, next)) => {
                    plain = false;
                    flush_lit(&mut word, &mut lit);
                    word.get_or_insert_with(Word::default)
                        .parts
                        .push(Part::Var {
                            name,
                            quoted: false,
                        });
                    i = next;
                }
                None => {
                    lit.push('$');
                    i += 1;
                }
            },
            c => {
                word.get_or_insert_with(Word::default);
                lit.push(c);
                i += 1;
            }
        }
    }
    end_word(&mut toks, &mut word, &mut lit, &mut plain);
    toks
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_bare(&self) -> Option<&str> {
        match self.toks.get(self.pos) {
            Some(Tok::Word(w)) => w.bare.as_deref(),
            _ => None,
        }
    }

    fn skip_seps(&mut self) {
        while matches!(self.toks.get(self.pos), Some(Tok::Sep)) {
            self.pos += 1;
        }
    }

    /// Words up to the end of the command (a separator, or an opening
    /// brace when `stop_at_brace`).
    fn words(&mut self, stop_at_brace: bool) -> Vec<Word> {
        let mut out = Vec::new();
        while let Some(Tok::Word(w)) = self.toks.get(self.pos) {
            if stop_at_brace && w.bare.as_deref() == Some("{") {
                break;
            }
            // `}` closing a block may follow a command on the same line.
            if w.bare.as_deref() == Some("}") && !out.is_empty() {
                break;
            }
            out.push(w.clone());
            self.pos += 1;
        }
        out
    }

    /// Statements until one of `ends` appears at a command start (not
    /// consumed) or the input ends.
    fn block(&mut self, ends: &[&str], depth: usize) -> Vec<Stmt> {
        let mut out = Vec::new();
        loop {
            self.skip_seps();
            let Some(first) = self.peek_bare().map(str::to_string).or_else(|| {
                matches!(self.toks.get(self.pos), Some(Tok::Word(_))).then(String::new)
            }) else {
                return out;
            };
            if ends.contains(&first.as_str()) {
                return out;
            }
            match first.as_str() {
                "if" if depth >= MAX_DEPTH => {
                    self.pos += 1;
                    self.skip_balanced("if", "fi");
                }
                "menuentry" | "submenu" | "function" if depth >= MAX_DEPTH => {
                    self.pos += 1;
                    self.words(true);
                    self.skip_balanced("{", "}");
                }
                "if" => {
                    self.pos += 1;
                    let stmt = self.if_stmt(depth + 1);
                    if depth < MAX_DEPTH {
                        out.push(stmt);
                    }
                }
                "menuentry" | "submenu" | "function" => {
                    let kind = match first.as_str() {
                        "menuentry" => BlockKind::Menuentry,
                        "submenu" => BlockKind::Submenu,
                        _ => BlockKind::Function,
                    };
                    self.pos += 1;
                    let args = self.words(true);
                    if self.peek_bare() == Some("{") {
                        self.pos += 1;
                        let body = self.block(&["}"], depth + 1);
                        if self.peek_bare() == Some("}") {
                            self.pos += 1;
                        }
                        if depth < MAX_DEPTH {
                            out.push(Stmt::Block { kind, args, body });
                        }
                    }
                }
                "for" | "while" | "until" => {
                    self.pos += 1;
                    self.skip_loop();
                }
                "}" | "fi" | "then" | "else" | "elif" | "done" | "do" => {
                    // Stray keyword outside its construct: drop it.
                    self.pos += 1;
                }
                _ => {
                    let w = self.words(false);
                    if w.is_empty() {
                        self.pos += 1;
                    } else {
                        out.push(Stmt::Cmd(w));
                    }
                }
            }
        }
    }

    /// Skip past the `close` that balances an already consumed `open`,
    /// without recursion (used beyond the nesting limit).
    fn skip_balanced(&mut self, open: &str, close: &str) {
        let mut depth = if open == "{" { 0 } else { 1 };
        while let Some(t) = self.toks.get(self.pos) {
            self.pos += 1;
            if let Tok::Word(w) = t {
                if w.bare.as_deref() == Some(open) {
                    depth += 1;
                } else if w.bare.as_deref() == Some(close) {
                    depth -= 1;
                    if depth <= 0 {
                        return;
                    }
                }
            }
        }
    }

    fn skip_loop(&mut self) {
        let mut depth = 1;
        let mut at_start = false;
        while let Some(t) = self.toks.get(self.pos) {
            self.pos += 1;
            match t {
                Tok::Sep => at_start = true,
                Tok::Word(w) => {
                    if at_start {
                        match w.bare.as_deref() {
                            Some("for" | "while" | "until") => depth += 1,
                            Some("done") => {
                                depth -= 1;
                                if depth == 0 {
                                    return;
                                }
                            }
                            _ => {}
                        }
                    }
                    at_start = matches!(w.bare.as_deref(), Some("do"));
                }
            }
        }
    }

    /// After `if`: condition up to `then`, body up to `elif`/`else`/`fi`.
    fn if_stmt(&mut self, depth: usize) -> Stmt {
        let mut branches = Vec::new();
        let mut otherwise = Vec::new();
        loop {
            let cond = self.block(&["then", "fi"], depth);
            if self.peek_bare() == Some("then") {
                self.pos += 1;
            }
            let body = self.block(&["elif", "else", "fi"], depth);
            branches.push((cond, body));
            match self.peek_bare() {
                Some("elif") => {
                    self.pos += 1;
                }
                Some("else") => {
                    self.pos += 1;
                    otherwise = self.block(&["fi"], depth);
                    if self.peek_bare() == Some("fi") {
                        self.pos += 1;
                    }
                    break;
                }
                Some("fi") => {
                    self.pos += 1;
                    break;
                }
                _ => break,
            }
        }
        Stmt::If {
            branches,
            otherwise,
        }
    }
}

/// Parse a whole `grub.cfg`.
pub fn parse(src: &str) -> Vec<Stmt> {
    let mut p = Parser {
        toks: lex(src),
        pos: 0,
    };
    p.block(&[], 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Word {
        Word {
            parts: vec![Part::Lit(s.into())],
            bare: Some(s.into()),
        }
    }

    #[test]
    fn quoting_and_variables() {
        let t = lex("set a='x y' b=\"p $v ${w}q\" c\\ d #comment\n");
        let Tok::Word(w) = &t[2] else { panic!() };
        assert_eq!(
            w.parts,
            vec![
                Part::Lit("b=p ".into()),
                Part::Var {
                    name: "v".into(),
                    quoted: true
                },
                Part::Lit(" ".into()),
                Part::Var {
                    name: "w".into(),
                    quoted: true
                },
                Part::Lit("q".into())
            ]
        );
        let Tok::Word(w) = &t[3] else { panic!() };
        assert_eq!(w.parts, vec![Part::Lit("c d".into())]);
        assert_eq!(w.bare, None);
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn blocks_and_if() {
        let s = parse("if [ x = y ]; then\n set a=1\nelif true; then set a=2\nelse\n set a=3\nfi\nmenuentry 'T' --id t {\n linux /v ro\n}\n");
        assert_eq!(s.len(), 2);
        let Stmt::If {
            branches,
            otherwise,
        } = &s[0]
        else {
            panic!()
        };
        assert_eq!(branches.len(), 2);
        assert_eq!(otherwise, &vec![Stmt::Cmd(vec![lit("set"), lit("a=3")])]);
        let Stmt::Block { kind, args, body } = &s[1] else {
            panic!()
        };
        assert_eq!(*kind, BlockKind::Menuentry);
        assert_eq!(args.len(), 3);
        assert_eq!(
            body,
            &vec![Stmt::Cmd(vec![lit("linux"), lit("/v"), lit("ro")])]
        );
    }

    #[test]
    fn loops_are_skipped_and_garbage_survives() {
        let s = parse("for x in a b; do\n echo $x\ndone\nset z=1\n}}} fi { '\"unterminated");
        assert_eq!(s[0], Stmt::Cmd(vec![lit("set"), lit("z=1")]));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let s = "submenu x {\n".repeat(10_000);
        let _ = parse(&s);
    }
}
