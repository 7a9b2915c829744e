//! Counting libtest results in `cargo test` output.

/// Tests counted from `test result:` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    /// How many `test result:` lines were seen (one per test binary / doctest run).
    pub results: u64,
}

/// Parses one libtest summary line, e.g.
/// `test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
pub fn parse_result_line(line: &str) -> Option<Counts> {
    let at = line.find("test result:")?;
    let rest = &line[at + "test result:".len()..];
    let mut c = Counts {
        results: 1,
        ..Counts::default()
    };
    let mut any = false;
    for part in rest.split([';', '.']) {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => c.passed += n,
            "failed" => c.failed += n,
            _ => continue,
        }
        any = true;
    }
    any.then_some(c)
}

/// Sums every `test result:` line of a `cargo test` run.
pub fn count(output: &str) -> Counts {
    output
        .lines()
        .filter_map(parse_result_line)
        .fold(Counts::default(), |a, b| Counts {
            passed: a.passed + b.passed,
            failed: a.failed + b.failed,
            results: a.results + b.results,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_line() {
        let c = parse_result_line(
            "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.03s",
        )
        .unwrap();
        assert_eq!(
            c,
            Counts {
                passed: 12,
                failed: 0,
                results: 1
            }
        );
    }

    #[test]
    fn failed_line() {
        let c = parse_result_line(
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.50s",
        )
        .unwrap();
        assert_eq!((c.passed, c.failed), (3, 2));
    }

    #[test]
    fn other_lines_ignored() {
        assert_eq!(parse_result_line("test foo ... ok"), None);
        assert_eq!(parse_result_line("running 3 tests"), None);
        assert_eq!(parse_result_line("test result: garbage"), None);
    }

    #[test]
    fn sums_all_binaries() {
        let out = "\
running 2 tests
test a ... ok
test b ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

running 0 tests

test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

running 5 tests
test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.20s
";
        assert_eq!(
            count(out),
            Counts {
                passed: 6,
                failed: 1,
                results: 3
            }
        );
        assert_eq!(count(""), Counts::default());
    }
}
