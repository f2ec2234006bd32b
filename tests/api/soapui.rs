//! fixtures/soapui-project.xml stays in step with the request fixtures and the served WSDL.
//! (`.ci/test` also regenerates the project and byte-compares it with the committed file.)

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::helpers::*;

/// Pairs of names and texts: (test step, request) or (binding, WSDL definition URL).
type Pairs = Vec<(String, String)>;

/// Every request step's (name, request text), and the interfaces' (binding, definition).
fn project() -> (Pairs, Pairs) {
    let path = format!("{}/fixtures/soapui-project.xml", env!("CARGO_MANIFEST_DIR"));
    let xml = std::fs::read_to_string(path).expect("project file");
    let mut reader = Reader::from_str(&xml);
    let (mut steps, mut interfaces) = (Vec::new(), Vec::new());
    let mut step = None;
    let mut depth_in_request = 0;
    loop {
        match reader.read_event().expect("the project is well-formed XML") {
            Event::Start(e) => {
                let attr = |name: &str| {
                    e.try_get_attribute(name)
                        .expect("attribute")
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                };
                match e.name().as_ref() {
                    b"con:testStep" => step = attr("name"),
                    // (a test step names its interface in a text-only con:interface)
                    b"con:interface" => {
                        if let Some(binding) = attr("bindingName") {
                            interfaces.push((binding, attr("definition").expect("definition")));
                        }
                    }
                    b"con:request" => depth_in_request += 1,
                    _ => {}
                }
            }
            Event::End(e) if e.name().as_ref() == b"con:request" => depth_in_request -= 1,
            Event::CData(c) if depth_in_request == 2 => {
                let name = step.clone().expect("CDATA inside a test step");
                steps.push((
                    name,
                    String::from_utf8(c.into_inner().into_owned()).expect("UTF-8"),
                ));
            }
            Event::Eof => return (steps, interfaces),
            _ => {}
        }
    }
}

#[test]
fn soapui_project_requests_equal_the_request_fixtures() {
    let (steps, _) = project();
    let dir = format!("{}/fixtures/requests", env!("CARGO_MANIFEST_DIR"));
    let mut fixtures: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| {
            let name = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("fixture"))
        })
        .collect();
    fixtures.sort();
    let mut steps = steps;
    steps.sort();
    assert_eq!(
        steps.iter().map(|s| &s.0).collect::<Vec<_>>(),
        fixtures.iter().map(|f| &f.0).collect::<Vec<_>>(),
        "regenerate with tests/interop/make_soapui_project.py"
    );
    for ((name, request), (_, fixture)) in steps.iter().zip(&fixtures) {
        assert_eq!(
            request, fixture,
            "{name}: regenerate with tests/interop/make_soapui_project.py"
        );
    }
}

#[test]
fn soapui_project_loads_the_served_wsdl_and_its_bindings() {
    let (_, interfaces) = project();
    assert_eq!(interfaces.len(), 2);
    let app = spawn_app();
    let wsdl = app.get("/soap?wsdl");
    assert_eq!(wsdl.status, 200);
    for (binding, definition) in interfaces {
        assert_eq!(definition, "http://localhost:8080/soap?wsdl");
        let local = binding.rsplit('}').next().expect("local name");
        assert!(binding.starts_with(&format!("{{{API_NS}}}")), "{binding}");
        assert!(
            wsdl.body
                .contains(&format!(r#"<wsdl:binding name="{local}""#)),
            "{local} not in the WSDL"
        );
    }
}
