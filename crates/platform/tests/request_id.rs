//! A request's `X-Request-Id` goes on with the calls a service makes to
//! another while serving it, so that both services' logs name one request.

use actix_web::{middleware::from_fn, web, App, HttpRequest, HttpResponse, HttpServer};
use platform::telemetry::{request_span, with_request_id, REQUEST_ID_HEADER};

/// Starts `app` on a free port of 127.0.0.1 and returns its base URL.
macro_rules! serve {
    ($app:expr) => {{
        let server = HttpServer::new($app)
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        format!("http://127.0.0.1:{port}")
    }};
}

#[tokio::test]
async fn a_call_made_while_serving_a_request_carries_its_id_and_one_made_outside_none() {
    // The service called: answers with the id it was sent, if any.
    let downstream = serve!(|| App::new().route(
        "/seen",
        web::get().to(|req: HttpRequest| async move {
            let id = req
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            HttpResponse::Ok().body(id)
        }),
    ));
    // The service calling it while serving a request.
    let seen = format!("{downstream}/seen");
    let upstream = serve!(move || {
        let seen = seen.clone();
        App::new().wrap(from_fn(request_span)).route(
            "/relay",
            web::get().to(move || {
                let seen = seen.clone();
                async move {
                    let answer = with_request_id(reqwest::Client::new().get(seen))
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    HttpResponse::Ok().body(answer)
                }
            }),
        )
    });

    let http = reqwest::Client::new();
    let relayed = |id: Option<&'static str>| {
        let mut call = http.get(format!("{upstream}/relay"));
        if let Some(id) = id {
            call = call.header(REQUEST_ID_HEADER, id);
        }
        async move {
            let r = call.send().await.unwrap();
            let echoed = r.headers()[REQUEST_ID_HEADER].to_str().unwrap().to_owned();
            (echoed, r.text().await.unwrap())
        }
    };
    // The caller's id travels on.
    let (echoed, downstream_saw) = relayed(Some("req-42.a:b")).await;
    assert_eq!(
        (echoed.as_str(), downstream_saw.as_str()),
        ("req-42.a:b", "req-42.a:b")
    );
    // Without one, the id made up for the request travels on.
    let (echoed, downstream_saw) = relayed(None).await;
    assert_eq!(downstream_saw, echoed);
    assert_ne!(downstream_saw, "none");
    // Outside any request (a background job), no id is invented.
    let outside = with_request_id(reqwest::Client::new().get(format!("{downstream}/seen")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(outside, "none");
}
