//! The plan as people and programs read it: a kubectl-style table with a summary line, or the whole plan as
//! JSON or YAML (`-o json|yaml`), objects included.

use std::io::Write;

use crate::kubectl::table::{Row, render as render_table};

use super::error::Error;
use super::plan::{Action, Item, Plan};

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

impl Row for Item {
    const HEADERS: &'static [&'static str] = &["ACTION", "KIND", "NAME", "SOURCE", "DETAIL"];
    const WIDE: &'static [&'static str] = &[];

    fn cells(&self) -> Vec<Option<String>> {
        vec![
            Some(self.action.to_string()),
            Some(self.kind.clone()),
            Some(self.name.clone()),
            Some(self.source.clone()),
            Some(self.detail.clone()),
        ]
    }
}

/// The plan as kubectl's table (the plugin's own), then a summary line.
fn table(plan: &Plan, applied: bool, out: &mut impl Write) -> Result<(), Error> {
    if !plan.items.is_empty() {
        out.write_all(render_table(&plan.items, false).as_bytes())?;
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
