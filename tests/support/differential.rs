//! The differential suite's engine-neutral parts: the corpus files, the verdict of a case
//! (with the corpus's `known:` tags), the report and the summary table in
//! docs/differential.md.
//!
//! Corpus file (`tests/differential/<engine>.txt`), one item a line:
//!
//! ```text
//! # a comment
//! @known <id> run|plan: <what is wrong>      a known defect and the aspect it breaks
//! [column add]                                 the clause kind of the cases below
//! <base> [flag ...] | <ALTER clauses>          a case
//! ```
//!
//! Flags: `writer` (a concurrent writer mirrored into both twins; it moves keys backwards),
//! `writer:forward` (the same, moving keys past every row, with small copy chunks), `known:<id>` (expected
//! to differ because of that defect), `volatile:<column>` (compare only whether the column
//! is NULL: its value depends on the time it was written, e.g. `DEFAULT now()`),
//! `global:<var>=<value>` (run alone, with that server or database setting), `flaky` (its
//! known defects depend on timing and show only sometimes).

use std::collections::{BTreeMap, HashMap};

/// The part of a case a known defect breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aspect {
    /// `godwit run`'s result against the native ALTER.
    Run,
    /// `godwit plan`'s prediction against what the server does.
    Plan,
}

#[derive(Debug, Clone)]
pub struct Known {
    pub id: String,
    pub aspect: Aspect,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Case {
    /// 1-based line in the corpus file.
    pub line: usize,
    pub kind: String,
    pub base: String,
    pub alter: String,
    pub writer: bool,
    /// The writer moves keys forwards (`writer:forward`).
    pub forward: bool,
    pub known: Vec<String>,
    pub volatile: Vec<String>,
    pub globals: Vec<(String, String)>,
    /// Its known defects show only sometimes (they depend on timing).
    pub flaky: bool,
}

#[derive(Debug)]
pub struct Corpus {
    pub file: String,
    pub known: BTreeMap<String, Known>,
    pub cases: Vec<Case>,
}

impl Corpus {
    /// Read `tests/differential/<name>`; panics with the line on a malformed entry.
    pub fn load(name: &str) -> Corpus {
        let file = format!("{}/tests/differential/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        Corpus::parse(name, &text)
    }

    pub fn parse(file: &str, text: &str) -> Corpus {
        let mut known = BTreeMap::new();
        let mut cases = Vec::new();
        let mut kind = String::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let at = || format!("{file}:{}", i + 1);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("@known ") {
                let (head, text) = rest
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{}: @known <id> run|plan: <text>", at()));
                let mut words = head.split_whitespace();
                let (Some(id), Some(aspect), None) = (words.next(), words.next(), words.next())
                else {
                    panic!("{}: @known <id> run|plan: <text>", at());
                };
                let aspect = match aspect {
                    "run" => Aspect::Run,
                    "plan" => Aspect::Plan,
                    a => panic!("{}: aspect must be run or plan, not {a}", at()),
                };
                let k = Known {
                    id: id.to_string(),
                    aspect,
                    text: text.trim().to_string(),
                };
                assert!(
                    known.insert(id.to_string(), k).is_none(),
                    "{}: {id} declared twice",
                    at()
                );
                continue;
            }
            if line.starts_with('[') && line.ends_with(']') {
                kind = line[1..line.len() - 1].trim().to_string();
                continue;
            }
            let (head, alter) = line
                .split_once(" | ")
                .unwrap_or_else(|| panic!("{}: <base> [flags] | <ALTER clauses>", at()));
            assert!(!kind.is_empty(), "{}: a case before any [kind]", at());
            let mut words = head.split_whitespace();
            let base = words.next().unwrap_or_else(|| panic!("{}: no base", at()));
            let mut case = Case {
                line: i + 1,
                kind: kind.clone(),
                base: base.to_string(),
                alter: alter.trim().to_string(),
                writer: false,
                forward: false,
                known: Vec::new(),
                volatile: Vec::new(),
                globals: Vec::new(),
                flaky: false,
            };
            for w in words {
                if w == "writer" {
                    case.writer = true;
                } else if w == "writer:forward" {
                    case.writer = true;
                    case.forward = true;
                } else if w == "flaky" {
                    case.flaky = true;
                } else if let Some(id) = w.strip_prefix("known:") {
                    assert!(known.contains_key(id), "{}: undeclared known:{id}", at());
                    case.known.push(id.to_string());
                } else if let Some(c) = w.strip_prefix("volatile:") {
                    case.volatile.push(c.to_string());
                } else if let Some(g) = w.strip_prefix("global:") {
                    let (k, v) = g
                        .split_once('=')
                        .unwrap_or_else(|| panic!("{}: global:<var>=<value>", at()));
                    case.globals.push((k.to_string(), v.to_string()));
                } else {
                    panic!("{}: unknown flag {w}", at());
                }
            }
            cases.push(case);
        }
        Corpus {
            file: file.to_string(),
            known,
            cases,
        }
    }

    /// The known defects of `case` that break `aspect`.
    pub fn known_for(&self, case: &Case, aspect: Aspect) -> Vec<&Known> {
        case.known
            .iter()
            .filter_map(|id| self.known.get(id))
            .filter(|k| k.aspect == aspect)
            .collect()
    }
}

/// What `godwit run` did, against the native ALTER.
#[derive(Debug, Clone)]
pub enum RunResult {
    /// Both changed the table; same definition, same rows, nothing left behind.
    Same,
    /// Both refused (godwit with exit 19/33 and the server's message); nothing changed.
    Refused,
    /// Anything else, described.
    Differs(String),
}

/// What `godwit plan` predicted, against the server.
#[derive(Debug, Clone)]
pub enum PlanResult {
    Match,
    /// The server refuses the ALTER: nothing to predict.
    NotApplicable,
    Differs(String),
}

/// One case's outcome, judged against its known tags.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub case: Case,
    pub run: RunResult,
    pub plan: PlanResult,
    /// Extra facts worth printing (writer operations, ...).
    pub notes: Vec<String>,
}

/// How one aspect of a case ended, after the known tags are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    Ok,
    /// Differs, as its known tag says.
    Known,
    /// Known-tagged but does not differ: the tag is stale.
    Fixed,
    /// Known-tagged, flaky, and did not differ this time.
    NotShown,
    /// Differs without a known tag: a failure.
    Unexpected,
}

impl Verdict {
    pub fn run_judged(&self, corpus: &Corpus) -> Judged {
        judge(
            matches!(self.run, RunResult::Differs(_)),
            !corpus.known_for(&self.case, Aspect::Run).is_empty(),
            self.case.flaky,
        )
    }
    pub fn plan_judged(&self, corpus: &Corpus) -> Judged {
        if matches!(self.plan, PlanResult::NotApplicable) {
            return Judged::Ok;
        }
        judge(
            matches!(self.plan, PlanResult::Differs(_)),
            !corpus.known_for(&self.case, Aspect::Plan).is_empty(),
            self.case.flaky,
        )
    }
}

fn judge(differs: bool, known: bool, flaky: bool) -> Judged {
    match (differs, known) {
        (false, false) => Judged::Ok,
        (true, true) => Judged::Known,
        (false, true) if flaky => Judged::NotShown,
        (false, true) => Judged::Fixed,
        (true, false) => Judged::Unexpected,
    }
}

/// Print every case that is not plainly fine and return the unexpected ones (the
/// failures), each as one paragraph.
pub fn report(corpus: &Corpus, verdicts: &[Verdict]) -> Vec<String> {
    let mut failures = Vec::new();
    for v in verdicts {
        let c = &v.case;
        let head = format!("{}:{} {} | {}", corpus.file, c.line, c.base, c.alter);
        let mut lines = Vec::new();
        let mut unexpected = false;
        for (aspect, judged, what) in [
            (Aspect::Run, v.run_judged(corpus), run_text(&v.run)),
            (Aspect::Plan, v.plan_judged(corpus), plan_text(&v.plan)),
        ] {
            let name = if aspect == Aspect::Run { "run" } else { "plan" };
            let tags: Vec<&str> = corpus
                .known_for(c, aspect)
                .iter()
                .map(|k| k.id.as_str())
                .collect();
            match judged {
                Judged::Ok => {}
                Judged::Known => lines.push(format!(
                    "  {name}: differs as known ({}): {what}",
                    tags.join(", ")
                )),
                Judged::Fixed => lines.push(format!(
                    "  {name}: tagged known ({}) but agrees with the server now: remove the tag",
                    tags.join(", ")
                )),
                Judged::NotShown => lines.push(format!(
                    "  {name}: agrees this time (flaky, known: {})",
                    tags.join(", ")
                )),
                Judged::Unexpected => {
                    unexpected = true;
                    lines.push(format!("  {name}: DIFFERS: {what}"));
                }
            }
        }
        for n in &v.notes {
            lines.push(format!("  note: {n}"));
        }
        if lines.is_empty() {
            continue;
        }
        let text = format!("{head}\n{}", lines.join("\n"));
        eprintln!("{text}");
        if unexpected {
            failures.push(text);
        }
    }
    failures
}

fn run_text(r: &RunResult) -> String {
    match r {
        RunResult::Same => "same".into(),
        RunResult::Refused => "refused by both".into(),
        RunResult::Differs(s) => s.clone(),
    }
}

fn plan_text(r: &PlanResult) -> String {
    match r {
        PlanResult::Match => "matches".into(),
        PlanResult::NotApplicable => "n/a".into(),
        PlanResult::Differs(s) => s.clone(),
    }
}

/// The summary table (clause kind × result) for one engine, in markdown.
pub fn summary(title: &str, corpus: &Corpus, verdicts: &[Verdict]) -> String {
    #[derive(Default)]
    struct Row {
        cases: usize,
        writer: usize,
        same: usize,
        refused: usize,
        run_known: usize,
        run_fail: usize,
        plan_ok: usize,
        plan_na: usize,
        plan_known: usize,
        plan_fail: usize,
    }
    let mut order: Vec<String> = Vec::new();
    let mut rows: HashMap<String, Row> = HashMap::new();
    let mut total = Row::default();
    let mut known_cases: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for v in verdicts {
        let c = &v.case;
        if !rows.contains_key(&c.kind) {
            order.push(c.kind.clone());
        }
        let r = rows.entry(c.kind.clone()).or_default();
        for r in [r, &mut total] {
            r.cases += 1;
            r.writer += c.writer as usize;
            // A flaky case counts as its known defect either way, so the table is the
            // same from run to run.
            match v.run_judged(corpus) {
                Judged::Ok | Judged::Fixed => match v.run {
                    RunResult::Refused => r.refused += 1,
                    _ => r.same += 1,
                },
                Judged::Known | Judged::NotShown => r.run_known += 1,
                Judged::Unexpected => r.run_fail += 1,
            }
            match v.plan_judged(corpus) {
                Judged::Ok | Judged::Fixed => match v.plan {
                    PlanResult::NotApplicable => r.plan_na += 1,
                    _ => r.plan_ok += 1,
                },
                Judged::Known | Judged::NotShown => r.plan_known += 1,
                Judged::Unexpected => r.plan_fail += 1,
            }
        }
        for id in &c.known {
            known_cases.entry(id.clone()).or_default().push(c.line);
        }
    }
    let mut s = format!("### {title}\n\n");
    s.push_str(&format!(
        "{} ALTERs from `tests/differential/{}`, {} of them under a concurrent writer.\n\n",
        total.cases, corpus.file, total.writer
    ));
    s.push_str("| clause kind | cases | run: same | run: both refuse | run: known defect | run: fails | plan: matches | plan: n/a (refused) | plan: known defect | plan: fails |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let line = |name: &str, r: &Row| {
        format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.cases,
            r.same,
            r.refused,
            r.run_known,
            r.run_fail,
            r.plan_ok,
            r.plan_na,
            r.plan_known,
            r.plan_fail
        )
    };
    for k in &order {
        s.push_str(&line(k, &rows[k]));
    }
    s.push_str(&line("**all**", &total));
    s.push_str("\nKnown defects (expected to differ until fixed), with the corpus lines that show them:\n\n");
    for (id, k) in &corpus.known {
        let lines = known_cases
            .get(id)
            .map(|v| {
                v.iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "none".into());
        let aspect = if k.aspect == Aspect::Run {
            "run"
        } else {
            "plan"
        };
        s.push_str(&format!(
            "- `{id}` ({aspect}): {} — lines {lines}\n",
            k.text
        ));
    }
    s
}

/// Replace this engine's section of docs/differential.md (between
/// `<!-- {key}:begin -->` and `<!-- {key}:end -->`) with `text`.
pub fn write_summary(key: &str, text: &str) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = format!("{}/docs/differential.md", env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (b, e) = (
        format!("<!-- {key}:begin -->"),
        format!("<!-- {key}:end -->"),
    );
    let start = doc.find(&b).unwrap_or_else(|| panic!("{path} has no {b}")) + b.len();
    let end = doc.find(&e).unwrap_or_else(|| panic!("{path} has no {e}"));
    let new = format!("{}\n{}\n{}", &doc[..start], text.trim_end(), &doc[end..]);
    std::fs::write(&path, new).unwrap_or_else(|e| panic!("{path}: {e}"));
}

/// Normalize a server error message for comparison: each `(from, to)` of `names` is
/// replaced (godwit's shadow by the table, databases/schemas by `N`), row numbers, the
/// duplicated value of a unique violation and byte sequences are dropped, whitespace is
/// collapsed.
pub fn normalize_message(msg: &str, names: &[(&str, &str)]) -> String {
    let mut m = msg.to_string();
    for (from, to) in names {
        if !from.is_empty() {
            m = m.replace(from, to);
        }
    }
    let m = replace_after(&m, " at row ", |rest| {
        rest.trim_start_matches(|c: char| c.is_ascii_digit())
            .to_string()
    });
    let m = replace_after(&m, "Duplicate entry '", |rest| {
        match rest.find("' for key") {
            Some(i) => format!("?{}", &rest[i..]),
            None => rest.to_string(),
        }
    });
    // Byte sequences name the first value that failed, which depends on the row order.
    m.split_whitespace()
        .map(|w| if w.starts_with("0x") { "0x?" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
        .replace("0x? 0x?", "0x?")
        .replace("0x? 0x?", "0x?")
}

/// Replace what follows each occurrence of `marker` by `f(rest)`.
fn replace_after(s: &str, marker: &str, f: impl Fn(&str) -> String) -> String {
    match s.find(marker) {
        None => s.to_string(),
        Some(i) => {
            let (head, rest) = s.split_at(i + marker.len());
            let rest = f(rest);
            format!("{head}{}", replace_after(&rest, marker, f))
        }
    }
}

/// A line diff of two definitions (lines only in one side, marked - and +).
pub fn line_diff(want: &[String], got: &[String]) -> String {
    let mut out = Vec::new();
    for l in want {
        if !got.contains(l) {
            out.push(format!("- {l}"));
        }
    }
    for l in got {
        if !want.contains(l) {
            out.push(format!("+ {l}"));
        }
    }
    if out.is_empty() {
        "same lines, another order:\n".to_string() + &got.join("\n")
    } else {
        out.join("\n")
    }
}

/// Compare two row sets (each row rendered as text), ignoring order.
pub fn compare_rows(mut want: Vec<String>, mut got: Vec<String>) -> Result<(), String> {
    want.sort();
    got.sort();
    if want == got {
        return Ok(());
    }
    let missing: Vec<&String> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
    let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
    Err(format!(
        "rows differ ({} native, {} godwit); native only: {missing:?}; godwit only: {extra:?}",
        want.len(),
        got.len()
    ))
}

#[test]
fn corpus_lines_are_read() {
    let c = Corpus::parse(
        "x.txt",
        "# c\n@known d1 run: a defect\n[column add]\nt writer:forward flaky known:d1 volatile:c global:sql_mode=X | ADD COLUMN c INT | 5\n",
    );
    assert_eq!(c.cases.len(), 1);
    let k = &c.cases[0];
    assert_eq!(
        (k.kind.as_str(), k.base.as_str(), k.alter.as_str()),
        ("column add", "t", "ADD COLUMN c INT | 5")
    );
    assert!(k.writer && k.forward && k.flaky);
    assert_eq!(k.known, vec!["d1"]);
    assert_eq!(k.volatile, vec!["c"]);
    assert_eq!(k.globals, vec![("sql_mode".to_string(), "X".to_string())]);
    assert_eq!(c.known_for(k, Aspect::Run).len(), 1);
    assert!(c.known_for(k, Aspect::Plan).is_empty());
    assert_eq!(
        normalize_message(
            "Duplicate entry 'a-1' for key 'uq'  at row 17 in db1.t_godwit_new",
            &[("t_godwit_new", "t"), ("db1", "N")]
        ),
        "Duplicate entry '?' for key 'uq' at row in N.t"
    );
}
