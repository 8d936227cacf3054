//! Printing a listing in the format `-o` asks for: kubectl's table (`-o wide` with more columns), or the
//! records as JSON or YAML, `{"items": [...]}`, so a script reads one shape whatever the count.

use serde::Serialize;

use super::cli::Format;
use super::error::Error;
use super::table::{Row, render};

#[derive(Serialize)]
struct Items<'a, R> {
    items: &'a [R],
}

/// The text for `rows` in `format`. An empty table is no text: the caller says so on stderr, as kubectl's
/// "No resources found" does; JSON and YAML print an empty list.
pub(crate) fn format<R: Row + Serialize>(rows: &[R], format: Format) -> Result<String, Error> {
    let items = Items { items: rows };
    match format {
        Format::Table | Format::Wide if rows.is_empty() => Ok(String::new()),
        Format::Table => Ok(render(rows, false)),
        Format::Wide => Ok(render(rows, true)),
        Format::Json => serde_json::to_string_pretty(&items)
            .map(|s| s + "\n")
            .map_err(|e| Error::Encode {
                format: "JSON",
                message: e.to_string(),
            }),
        Format::Yaml => serde_saphyr::to_string(&items).map_err(|e| Error::Encode {
            format: "YAML",
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct R {
        name: &'static str,
        pod_name: Option<&'static str>,
    }

    impl Row for R {
        const HEADERS: &'static [&'static str] = &["NAME", "POD"];
        const WIDE: &'static [&'static str] = &[];
        fn cells(&self) -> Vec<Option<String>> {
            vec![Some(self.name.into()), self.pod_name.map(Into::into)]
        }
    }

    #[test]
    fn every_format() {
        let rows = [R {
            name: "a",
            pod_name: None,
        }];
        assert_eq!(
            format(&rows, Format::Table).unwrap(),
            "NAME   POD\na      <none>\n"
        );
        assert_eq!(
            format(&rows, Format::Json).unwrap(),
            "{\n  \"items\": [\n    {\n      \"name\": \"a\",\n      \"podName\": null\n    }\n  ]\n}\n"
        );
        assert_eq!(
            format(&rows, Format::Yaml).unwrap(),
            "items:\n- name: a\n  podName: null\n"
        );
        assert_eq!(format::<R>(&[], Format::Table).unwrap(), "");
        assert_eq!(
            format::<R>(&[], Format::Json).unwrap(),
            "{\n  \"items\": []\n}\n"
        );
    }
}
