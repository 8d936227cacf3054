//! kubectl's tables: upper-case headers, columns padded to their widest cell plus three spaces, the last
//! column unpadded, `<none>` for an empty cell. kubectl makes them with Go's text/tabwriter (min width 6,
//! padding 3); the `tabwriter` crate is its port, and min width 3 there gives the same columns (it adds the
//! padding after the minimum, Go before).

use std::io::Write as _;

/// What kubectl prints for an empty value.
pub(crate) const NONE: &str = "<none>";

/// One row of a listing: the default columns, then those `-o wide` adds.
pub(crate) trait Row {
    const HEADERS: &'static [&'static str];
    const WIDE: &'static [&'static str];
    /// One cell per header of `HEADERS` then of `WIDE`; `None` prints as `<none>`.
    fn cells(&self) -> Vec<Option<String>>;
}

/// The table of `rows`, each line ending in a newline; `wide` adds the wide columns.
pub(crate) fn render<R: Row>(rows: &[R], wide: bool) -> String {
    let width = R::HEADERS.len() + if wide { R::WIDE.len() } else { 0 };
    let mut lines: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 1);
    lines.push(
        R::HEADERS
            .iter()
            .chain(R::WIDE)
            .take(width)
            .map(|h| h.to_string())
            .collect(),
    );
    for row in rows {
        lines.push(
            row.cells()
                .into_iter()
                .take(width)
                .map(|c| clean(c.as_deref().filter(|c| !c.is_empty()).unwrap_or(NONE)))
                .collect(),
        );
    }
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(3).padding(3);
    for line in lines {
        // Writing to a Vec cannot fail.
        let _ = writeln!(tw, "{}", line.join("\t"));
    }
    let bytes = tw.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A cell on one line with no tab, which would start a new column.
fn clean(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct R(&'static str, Option<&'static str>, &'static str);

    impl Row for R {
        const HEADERS: &'static [&'static str] = &["NAME", "IP"];
        const WIDE: &'static [&'static str] = &["NOTE"];
        fn cells(&self) -> Vec<Option<String>> {
            vec![
                Some(self.0.into()),
                self.1.map(Into::into),
                Some(self.2.into()),
            ]
        }
    }

    #[test]
    fn columns_line_up_as_kubectls() {
        let rows = [
            R("a", Some("10.0.0.1"), "x"),
            R("longer-name", None, "two\twords"),
        ];
        assert_eq!(
            render(&rows, false),
            "NAME          IP\n\
             a             10.0.0.1\n\
             longer-name   <none>\n"
        );
        assert_eq!(
            render(&rows, true),
            "NAME          IP         NOTE\n\
             a             10.0.0.1   x\n\
             longer-name   <none>     two words\n"
        );
    }

    #[test]
    fn narrow_columns_take_kubectls_minimum_width() {
        // Go's tabwriter with minwidth 6: a one-letter column is 6 wide.
        struct N;
        impl Row for N {
            const HEADERS: &'static [&'static str] = &["A", "B"];
            const WIDE: &'static [&'static str] = &[];
            fn cells(&self) -> Vec<Option<String>> {
                vec![Some("x".into()), Some(String::new())]
            }
        }
        assert_eq!(render(&[N], false), "A     B\nx     <none>\n");
        assert_eq!(render::<N>(&[], false), "A     B\n");
    }
}
