//! The README quotes the integration snippets that `.ci/test` runs, exactly.

#[test]
fn readme_quotes_every_integration_snippet_verbatim() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    let dir = format!("{root}/docs/integrating");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(dir).expect("snippets dir") {
        let path = entry.expect("entry").path();
        let snippet = std::fs::read_to_string(&path).expect("snippet");
        assert!(
            readme.contains(snippet.trim_end()),
            "README.md does not quote {} verbatim",
            path.display()
        );
        checked.push(
            path.file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned(),
        );
    }
    checked.sort();
    // Every file .ci/test runs or sends, and nothing else: a new snippet is added here too.
    assert_eq!(
        checked,
        [
            "curl_body.sh",
            "curl_rest.sh",
            "curl_soap_operations.sh",
            "curl_wsse.sh",
            "node_example.js",
            "wsse-request.xml",
            "zeep_example.py",
        ]
    );
}
