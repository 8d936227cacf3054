//! The plan as people and programs read it: a kubectl-style table with a summary line, or the whole plan as
//! JSON or YAML (`-o json|yaml`), objects included.

use std::io::Write;

use super::error::Error;
use super::plan::{Action, Plan};

/// `-o` of `adopt` and `import`: without it, a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
}

pub(crate) fn render(
    plan: &Plan,
    format: Option<OutputFormat>,
    applied: bool,
    out: &mut impl Write,
) -> Result<(), Error> {
    match format {
        Some(OutputFormat::Json) => {
            let text = serde_json::to_string_pretty(plan).map_err(|e| Error::Render {
                format: "json",
                message: e.to_string(),
            })?;
            writeln!(out, "{text}")?;
        }
        Some(OutputFormat::Yaml) => {
            let text = crate::api::manifest_yaml(plan).map_err(|e| Error::Render {
                format: "yaml",
                message: e.to_string(),
            })?;
            write!(out, "{text}")?;
        }
        None => table(plan, applied, out)?,
    }
    Ok(())
}

fn table(plan: &Plan, applied: bool, out: &mut impl Write) -> Result<(), Error> {
    let header = ["ACTION", "KIND", "NAME", "SOURCE", "DETAIL"];
    let rows: Vec<[String; 5]> = plan
        .items
        .iter()
        .map(|i| {
            [
                i.action.to_string(),
                i.kind.clone(),
                i.name.clone(),
                i.source.clone(),
                i.detail.clone(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r.iter()).take(4) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (k, c) in cells.iter().enumerate() {
            if k < 4 {
                s += &format!("{c:<w$}   ", w = width[k]);
            } else {
                s += c;
            }
        }
        s.trim_end().to_string()
    };
    if !rows.is_empty() {
        writeln!(out, "{}", line(header))?;
    }
    for r in &rows {
        writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]))?;
    }
    let n = |a| plan.count(a);
    let created = if applied {
        format!("{} created", n(Action::Created))
    } else {
        format!("{} to create", n(Action::Create))
    };
    writeln!(
        out,
        "{created}, {} exist, {} conflicts, {} skipped{}",
        n(Action::Exists),
        n(Action::Conflict),
        n(Action::Skip),
        if applied {
            ""
        } else {
            " (dry run: nothing written; add --apply to write)"
        }
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::plan::Item;

    #[test]
    fn table_and_formats() {
        let plan = Plan {
            items: vec![
                Item::note(
                    Action::Create,
                    "IPLease",
                    "hl.172.30.0.2",
                    "pod default/a net1",
                    "172.30.0.2 for pod default/a".into(),
                ),
                Item::note(
                    Action::Conflict,
                    "IPLease",
                    "10.9.9.9",
                    "pod default/out net1",
                    "outside".into(),
                ),
            ],
        };
        let mut t = Vec::new();
        render(&plan, None, false, &mut t).unwrap();
        let t = String::from_utf8(t).unwrap();
        assert_eq!(
            t,
            "ACTION     KIND      NAME            SOURCE                 DETAIL\n\
             create     IPLease   hl.172.30.0.2   pod default/a net1     172.30.0.2 for pod default/a\n\
             conflict   IPLease   10.9.9.9        pod default/out net1   outside\n\
             1 to create, 0 exist, 1 conflicts, 0 skipped (dry run: nothing written; add --apply to write)\n"
        );
        let mut j = Vec::new();
        render(&plan, Some(OutputFormat::Json), false, &mut j).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&j).unwrap();
        assert_eq!(v["items"][1]["action"], "conflict");
        let mut y = Vec::new();
        render(&plan, Some(OutputFormat::Yaml), true, &mut y).unwrap();
        assert!(String::from_utf8(y).unwrap().contains("action: create"));
    }
}
