//! The README quotes the integration snippets that `.ci/test` runs, exactly.

#[test]
fn readme_quotes_every_integration_snippet_verbatim() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    let dir = format!("{root}/docs/integrating");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("snippets dir") {
        let path = entry.expect("entry").path();
        let snippet = std::fs::read_to_string(&path).expect("snippet");
        assert!(
            readme.contains(snippet.trim_end()),
            "README.md does not quote {} verbatim",
            path.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
}
