//! `select`: a jq program, run by jaq, and what its output means ([`Selection`]). Compiled when its file is read (a program that does
//! not compile is a mistake at its line), and again for each run, inside the blocking task
//! that runs it: jaq's values are reference-counted for one thread, and a run is CPU work
//! that must not hold up the sockets.

use super::changes::Wanted;
use crate::ops::Op;
use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{compile, data, unwrap_valr, Compiler, Ctx, Native, Vars};
use jaq_json::Val;
use serde_json::Value;

/// The most values a program may give; one is what a source expects.
const MAX_OUTPUTS: usize = 2;

type Filter = compile::Filter<Native<data::JustLut<Val>>>;

/// Why a program does not compile, and where in it (a byte offset).
#[derive(Debug, PartialEq)]
pub(crate) struct NotCompiled {
    pub(crate) at: usize,
    pub(crate) message: String,
}

/// Compiles `code` and hands the filter to `then`.
fn compiled<R>(code: &str, then: impl FnOnce(Filter) -> R) -> Result<R, NotCompiled> {
    let program = File { code, path: () };
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let arena = Arena::default();
    let at = |part: &str| load::span(code, part).start;
    let modules = Loader::new(defs).load(&arena, program).map_err(|errors| {
        let first = errors.into_iter().next().map(|(_, error)| error);
        match first {
            Some(load::Error::Lex(errors)) => {
                errors
                    .first()
                    .map_or_else(unknown, |(expect, part)| NotCompiled {
                        at: at(part),
                        message: format!("expected {}", expect.as_str()),
                    })
            }
            Some(load::Error::Parse(errors)) => {
                errors
                    .first()
                    .map_or_else(unknown, |(expect, part)| NotCompiled {
                        at: at(part),
                        message: if part.is_empty() {
                            format!("expected {}, found the end", expect.as_str())
                        } else {
                            format!("expected {}, found `{}`", expect.as_str(), shorten(part))
                        },
                    })
            }
            Some(load::Error::Io(errors)) => {
                errors
                    .first()
                    .map_or_else(unknown, |(part, why)| NotCompiled {
                        at: at(part),
                        message: why.clone(),
                    })
            }
            None => unknown(),
        }
    })?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| {
            let first = errors.into_iter().flat_map(|(_, errors)| errors).next();
            first.map_or_else(unknown, |(name, undefined)| NotCompiled {
                at: at(name),
                message: format!("{} `{name}` is not defined", undefined.as_str()),
            })
        })?;
    Ok(then(filter))
}

fn unknown() -> NotCompiled {
    NotCompiled {
        at: 0,
        message: "the program does not compile".into(),
    }
}

fn shorten(part: &str) -> &str {
    part.char_indices()
        .nth(24)
        .map_or(part, |(end, _)| &part[..end])
}

/// Whether `code` compiles.
pub(crate) fn check(code: &str) -> Result<(), NotCompiled> {
    compiled(code, |_| ())
}

/// Runs `code` on the JSON document `input`: its one output, or why there is none.
pub(crate) fn run(code: &str, input: &[u8]) -> Result<Value, String> {
    let input =
        jaq_json::read::parse_single(input).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let outputs = compiled(code, |filter| {
        let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
        filter
            .id
            .run((ctx, input))
            .map(unwrap_valr)
            .take(MAX_OUTPUTS)
            .collect::<Vec<_>>()
    })
    .map_err(|e| format!("select does not compile: {}", e.message))?;
    let mut outputs = outputs.into_iter();
    let value = match (outputs.next(), outputs.next()) {
        (None, _) => return Err("select gave nothing".into()),
        (Some(_), Some(_)) => {
            return Err("select gave more than one value; wrap it in [ … ] or pick one".into())
        }
        (Some(Err(e)), None) => return Err(format!("select failed: {e}")),
        (Some(Ok(value)), None) => value,
    };
    // jaq writes JSON as jq does (a NaN as null); serde_json reads it back.
    serde_json::from_str(&value.to_string()).map_err(|e| format!("select gave no JSON value: {e}"))
}

/// A `select` and what its one output says the topic should hold: with `entity`, that
/// entity's payload (a number, an object, anything); without, an object of entity id →
/// payload (with `replace`, the topic's other entities are deleted), or an array of ops to
/// apply as given. Shared by http sources and generic hooks.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Selection {
    pub(crate) select: String,
    pub(crate) entity: Option<String>,
    pub(crate) replace: bool,
}

impl Selection {
    /// Runs the program on a JSON document: CPU work, for a blocking task.
    pub(crate) fn wanted(&self, input: &[u8]) -> Result<Wanted, String> {
        let output = run(&self.select, input)?;
        if let Some(entity) = &self.entity {
            if output.is_null() {
                return Err("select gave null: does its path match the input?".into());
            }
            return Ok(Wanted::Entities {
                state: [(entity.clone(), output)].into(),
                replace: false,
            });
        }
        match output {
            Value::Object(entities) => Ok(Wanted::Entities {
                state: entities.into_iter().collect(),
                replace: self.replace,
            }),
            Value::Array(ops) => ops
                .into_iter()
                .enumerate()
                .map(|(index, op)| {
                    serde_json::from_value::<Op>(op)
                        .map_err(|e| format!("select's op {index} is not an op: {e}"))
                })
                .collect::<Result<_, _>>()
                .map(Wanted::Ops),
            Value::Null => Err("select gave null: does its path match the input?".into()),
            other => Err(format!(
                "select gave {}, not an object of entities or a list of ops: name the `entity` it is the payload of",
                kind_of(&other)
            )),
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn programs_run_on_documents() {
        let doc = br#"{"items": [{"id": "a", "n": 1}, {"id": "b", "n": 2}]}"#;
        assert_eq!(run(".items | length", doc), Ok(json!(2)));
        assert_eq!(
            run("[.items[] | {key: .id, value: .n}] | from_entries", doc),
            Ok(json!({"a": 1, "b": 2}))
        );
        assert!(run(".items[]", doc).unwrap_err().contains("more than one"));
        assert!(run("empty", doc).unwrap_err().contains("nothing"));
        assert!(run(".", b"<html>").unwrap_err().contains("not JSON"));
        assert!(run(".items | .x", doc)
            .unwrap_err()
            .starts_with("select failed"));
    }

    #[test]
    fn mistakes_say_where() {
        assert!(check(".a | map(.b)").is_ok());
        let missing = check(".a | nosuch(1)").unwrap_err();
        assert_eq!(missing.at, 5);
        assert!(missing.message.contains("nosuch"), "{missing:?}");
        let broken = check(".a | (").unwrap_err();
        assert!(broken.message.starts_with("expected"), "{broken:?}");
    }
}
