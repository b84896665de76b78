//! Every planted implementation bug (`lockstep::mutants::Mutant::ALL`) has at least one harness
//! that catches it, as the model catalogue has for model properties: a mutant no test switches on
//! proves nothing about any harness. The table (`lockstep::mutants::CATCHERS`) names each catching
//! test; this checks that the test exists where it says, is not ignored, and switches that very
//! mutant on.

use lockstep::mutants::{Mutant, CATCHERS};

/// The source of `function` in `source` (from its `fn` line to the first line that closes it at
/// the same indentation), and the attribute and doc lines just above it.
fn function<'a>(source: &'a str, function: &str) -> Option<(&'a str, Vec<&'a str>)> {
    let header = source.find(&format!("fn {function}("))?;
    let line_start = source[..header].rfind('\n').map_or(0, |i| i + 1);
    let indent = &source[line_start..header];
    let indent = &indent[..indent.len() - indent.trim_start().len()];
    let end = source[header..]
        .find(&format!("\n{indent}}}\n"))
        .map_or(source.len(), |i| header + i);
    let attributes = source[..line_start]
        .lines()
        .rev()
        .take_while(|l| l.trim_start().starts_with("#[") || l.trim_start().starts_with("///"))
        .collect();
    Some((&source[header..end], attributes))
}

fn variant(mutant: Mutant) -> String {
    format!("Mutant::{mutant:?}")
}

#[test]
fn every_mutant_has_a_catching_harness() {
    for mutant in Mutant::ALL {
        assert!(
            CATCHERS.iter().any(|(m, ..)| *m == mutant),
            "no harness is listed as catching {}",
            mutant.name()
        );
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for (mutant, file, test) in CATCHERS {
        let source = std::fs::read_to_string(format!("{root}/{file}"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let (body, attributes) =
            function(&source, test).unwrap_or_else(|| panic!("{file} has no fn {test}"));
        assert!(
            attributes.iter().any(|l| l.trim() == "#[test]"),
            "{file}: {test} is not a #[test]"
        );
        assert!(
            !attributes.iter().any(|l| l.contains("#[ignore")),
            "{file}: {test} is ignored"
        );
        assert!(
            body.contains(&variant(*mutant)) || body.contains(&format!("\"{}\"", mutant.name())),
            "{file}: {test} does not switch on {} ({})",
            mutant.name(),
            variant(*mutant)
        );
    }
}

/// The check above can fail: a mutant named by no test's body is reported.
#[test]
fn the_check_sees_a_test_that_switches_on_another_mutant() {
    let source =
        "#[test]\nfn catches() {\n    let _one = exclusive(Some(Mutant::SkipRecheck));\n}\n";
    let (body, attributes) = function(source, "catches").unwrap();
    assert_eq!(attributes, ["#[test]"]);
    assert!(body.contains(&variant(Mutant::SkipRecheck)));
    assert!(!body.contains(&variant(Mutant::NoHighWater)));
    let ignored_source = "#[test]\n#[ignore]\nfn catches() {\n}\n";
    assert!(function(ignored_source, "catches")
        .unwrap()
        .1
        .iter()
        .any(|l| l.contains("#[ignore")));
}
