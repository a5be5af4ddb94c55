//! A request's `X-Request-Id` and W3C trace go on with the calls a service
//! makes to another while serving it, so that both services' logs name one
//! request and one trace.

use actix_web::{middleware::from_fn, web, App, HttpRequest, HttpResponse, HttpServer};
use platform::telemetry::{
    parse_traceparent, request_span, with_request_id, REQUEST_ID_HEADER, TRACEPARENT_HEADER,
};

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

/// A service that answers with the value of `header` it was sent ("none"
/// without one).
fn echoing(header: &'static str) -> String {
    serve!(move || App::new().route(
        "/seen",
        web::get().to(move |req: HttpRequest| async move {
            let v = req
                .headers()
                .get(header)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            HttpResponse::Ok().body(v)
        }),
    ))
}

/// A service that, while serving `GET /relay`, calls `seen` as a service
/// of the platform does and answers with what it answered.
fn relaying(seen: String) -> String {
    serve!(move || {
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
    })
}

#[tokio::test]
async fn a_call_made_while_serving_a_request_carries_its_id_and_one_made_outside_none() {
    // The service called answers with the id it was sent, if any.
    let downstream = echoing(REQUEST_ID_HEADER);
    let upstream = relaying(format!("{downstream}/seen"));

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

#[tokio::test]
async fn a_call_made_while_serving_a_request_continues_its_w3c_trace() {
    // The service called answers with the `traceparent` it was sent.
    let downstream = echoing(TRACEPARENT_HEADER);
    let upstream = relaying(format!("{downstream}/seen"));
    let http = reqwest::Client::new();
    let relayed = |tp: Option<&'static str>| {
        let mut call = http.get(format!("{upstream}/relay"));
        if let Some(tp) = tp {
            call = call.header(TRACEPARENT_HEADER, tp);
        }
        async move { call.send().await.unwrap().text().await.unwrap() }
    };
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // The caller's trace goes on, under the upstream service's own span.
    let sent = relayed(Some(caller)).await;
    assert_eq!(
        parse_traceparent(&sent).as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        "{sent}"
    );
    assert!(!sent.contains("00f067aa0ba902b7"), "{sent}");
    // Without one, or with a malformed one, a new trace starts.
    for tp in [
        None,
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        Some("garbage"),
    ] {
        let sent = relayed(tp).await;
        let trace = parse_traceparent(&sent).unwrap_or_else(|| panic!("{sent}"));
        assert_ne!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
