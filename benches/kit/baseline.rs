//! The minimal actix-web handler the light path is compared with.

use std::io::Write;

use actix_web::{App, HttpResponse, HttpServer, web};

/// About the size of the service's fault answers.
pub(crate) const BODY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode><faultstring>Wrong parameters</faultstring></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;

pub(crate) async fn fixed() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(BODY)
}

/// Serves `POST /soap` with as many workers as the service would use.
pub(crate) fn serve() {
    let workers = soap_passwd::config::cores();
    let result = actix_web::rt::System::new().block_on(async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(|| App::new().route("/soap", web::post().to(fixed)))
            .workers(workers)
            .listen(listener)?
            .run();
        println!("kit baseline listening on http://127.0.0.1:{port}/soap");
        std::io::stdout().flush()?;
        server.await
    });
    if let Err(e) = result {
        eprintln!("kit baseline: {e}");
        std::process::exit(1);
    }
}
