//! Input the database cannot store: PostgreSQL refuses NUL in text, and no
//! identifier, name or description of ours has a use for the other control
//! characters. Rather than each handler checking each field, one middleware
//! ([`RejectControlCharacters`]) refuses, with a 400 problem, a request whose
//! path, query string, or JSON, form or CSV body holds one, before any
//! handler runs.
//!
//! What counts as a control character: U+0000 to U+001F and U+007F, raw or
//! written the way the syntax escapes it (`%00` in a URL or form, `\u0000`,
//! `\b` or `\f` in a JSON string). Tab, line feed and carriage return stay
//! allowed in bodies (a task's description has lines) but not in paths and
//! query strings, which only carry identifiers and filters and are echoed
//! into `Location` headers and logs.
//!
//! The body is scanned once, byte by byte with a table lookup, without
//! parsing it; a clean body reaches the handler unchanged. Up to the
//! service's `MAX_BODY_BYTES` it is held here, so that the refusal comes
//! before the handler; a body beyond (a route with a larger limit, or one
//! its extractor refuses with 413 as before) is scanned as it flows to the
//! handler, and a control character in it fails the read, which the shared
//! extractors answer with the same problem ([`refusal_in`]).

use std::{
    fmt, io,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll},
};

use actix_web::{
    body::EitherBody,
    dev::{
        forward_ready, Decompress, Payload, Service, ServiceRequest, ServiceResponse, Transform,
    },
    error::PayloadError,
    http::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE},
    web::{Bytes, BytesMut},
    Error, HttpMessage,
};
use futures::{
    future::{ready, LocalBoxFuture, Ready},
    stream, Stream, StreamExt,
};

use crate::Problem;

/// The `rule` member of the problem.
pub const RULE: &str = "no_control_characters";

/// How the scanned text writes a control character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// A path or query string: percent-encoding; tab, LF and CR refused too.
    Url,
    /// An `application/x-www-form-urlencoded` body: percent-encoding; tab,
    /// LF and CR allowed.
    Form,
    /// JSON: `\u0000`..`\u001f`, `\u007f`, `\b` and `\f` escapes; `\t`,
    /// `\n` and `\r` allowed.
    Json,
    /// Plain text (CSV): raw bytes only; tab, LF and CR allowed.
    Text,
}

/// Where a control character was found (the problem's `in` member).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Path,
    Query,
    Body,
}

impl Place {
    pub fn as_str(self) -> &'static str {
        match self {
            Place::Path => "path",
            Place::Query => "query",
            Place::Body => "body",
        }
    }

    fn described(self) -> &'static str {
        match self {
            Place::Path => "the path",
            Place::Query => "the query string",
            Place::Body => "the body",
        }
    }
}

/// A control character found by a [`Scanner`]: its code and the offset (in
/// the scanned bytes) where its raw byte or its escape begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub code: u8,
    pub offset: usize,
}

/// Bytes that stop the fast loop, per syntax: the escape introducer and
/// the raw control bytes the syntax refuses.
type Table = [bool; 256];

const fn table(introducer: u8, allow_whitespace: bool) -> Table {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = !(allow_whitespace && (b == 0x09 || b == 0x0a || b == 0x0d));
        b += 1;
    }
    t[0x7f] = true;
    if introducer != 0 {
        t[introducer as usize] = true;
    }
    t
}

static URL_TABLE: Table = table(b'%', false);
static FORM_TABLE: Table = table(b'%', true);
static JSON_TABLE: Table = table(b'\\', true);
static TEXT_TABLE: Table = table(0, true);

impl Syntax {
    fn table(self) -> &'static Table {
        match self {
            Syntax::Url => &URL_TABLE,
            Syntax::Form => &FORM_TABLE,
            Syntax::Json => &JSON_TABLE,
            Syntax::Text => &TEXT_TABLE,
        }
    }

    /// Whether the decoded code `c` (0..=0x7f or more) is refused.
    fn refuses(self, c: u32) -> bool {
        let whitespace = c == 0x09 || c == 0x0a || c == 0x0d;
        (c < 0x20 || c == 0x7f) && !(whitespace && self != Syntax::Url)
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Plain,
    /// After a JSON backslash, which began at `start`.
    Escape {
        start: usize,
    },
    /// Inside `\uXXXX`.
    Unicode {
        start: usize,
        digits: u8,
        value: u32,
    },
    /// Inside `%XX`.
    Percent {
        start: usize,
        digits: u8,
        value: u32,
    },
}

/// Finds the first control character in a text that may arrive in chunks
/// (an escape may straddle two of them).
#[derive(Debug, Clone)]
pub struct Scanner {
    syntax: Syntax,
    state: State,
    /// Bytes scanned before the current chunk.
    offset: usize,
}

fn hex(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

impl Scanner {
    pub fn new(syntax: Syntax) -> Self {
        Self {
            syntax,
            state: State::Plain,
            offset: 0,
        }
    }

    /// Scans the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Found> {
        let table = self.syntax.table();
        let base = self.offset;
        let found = |code: u8, at: usize| Found { code, offset: at };
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            match self.state {
                State::Plain => {
                    // The hot loop: most bytes start nothing.
                    match chunk[i..].iter().position(|&b| table[b as usize]) {
                        None => break,
                        Some(n) => i += n,
                    }
                    let b = chunk[i];
                    match (b, self.syntax) {
                        (b'\\', Syntax::Json) => self.state = State::Escape { start: base + i },
                        (b'%', Syntax::Url | Syntax::Form) => {
                            self.state = State::Percent {
                                start: base + i,
                                digits: 0,
                                value: 0,
                            }
                        }
                        _ => return Err(found(b, base + i)),
                    }
                    i += 1;
                }
                State::Escape { start } => {
                    self.state = State::Plain;
                    match b {
                        b'u' => {
                            self.state = State::Unicode {
                                start,
                                digits: 0,
                                value: 0,
                            }
                        }
                        b'b' => return Err(found(0x08, start)),
                        b'f' => return Err(found(0x0c, start)),
                        // `\\`, `\"`, `\n`...: the escape ends here.
                        _ if !table[b as usize] || b == b'\\' => {}
                        // Invalid JSON, but a raw control all the same.
                        _ => return Err(found(b, base + i)),
                    }
                    i += 1;
                }
                State::Unicode {
                    start,
                    digits,
                    value,
                }
                | State::Percent {
                    start,
                    digits,
                    value,
                } => {
                    let unicode = matches!(self.state, State::Unicode { .. });
                    let Some(h) = hex(b) else {
                        // Not an escape after all: look at this byte afresh.
                        self.state = State::Plain;
                        continue;
                    };
                    let (digits, value) = (digits + 1, (value << 4) | h);
                    let complete = if unicode { 4 } else { 2 };
                    if digits == complete {
                        self.state = State::Plain;
                        if self.syntax.refuses(value) {
                            return Err(found(value as u8, start));
                        }
                    } else if unicode {
                        self.state = State::Unicode {
                            start,
                            digits,
                            value,
                        };
                    } else {
                        self.state = State::Percent {
                            start,
                            digits,
                            value,
                        };
                    }
                    i += 1;
                }
            }
        }
        self.offset += chunk.len();
        Ok(())
    }
}

/// The first control character of a whole text.
pub fn scan(syntax: Syntax, text: &[u8]) -> Result<(), Found> {
    Scanner::new(syntax).feed(text)
}

/// A request refused for a control character: the problem it answers, and
/// the error a body read fails with when the character comes after the
/// part held by the middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub place: Place,
    pub found: Found,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} holds the control character U+{:04X} (at byte {}), which no field may carry",
            self.place.described(),
            self.found.code,
            self.found.offset
        )
    }
}

impl std::error::Error for Refused {}

impl Refused {
    pub fn problem(&self) -> Problem {
        Problem::bad_request(self.to_string())
            .with("rule", RULE)
            .with("in", self.place.as_str())
    }
}

/// The refusal inside a body-read error, for extractors' error handlers.
pub fn refusal_in(err: &PayloadError) -> Option<Refused> {
    match err {
        PayloadError::Io(e) => e.get_ref()?.downcast_ref::<Refused>().copied(),
        _ => None,
    }
}

/// The syntax of a body by its media type; `None`: not scanned.
fn body_syntax(headers: &HeaderMap) -> Option<Syntax> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim();
    let (kind, sub) = essence.split_once('/')?;
    let (kind, sub) = (kind.trim(), sub.trim());
    if kind.eq_ignore_ascii_case("application") {
        if sub.eq_ignore_ascii_case("x-www-form-urlencoded") {
            return Some(Syntax::Form);
        }
        if sub.eq_ignore_ascii_case("csv") {
            return Some(Syntax::Text);
        }
    }
    if kind.eq_ignore_ascii_case("text") && sub.eq_ignore_ascii_case("csv") {
        return Some(Syntax::Text);
    }
    let json = sub.eq_ignore_ascii_case("json")
        || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json");
    json.then_some(Syntax::Json)
}

fn check_target(req: &ServiceRequest) -> Result<(), Refused> {
    let refused = |place| move |found| Refused { place, found };
    scan(Syntax::Url, req.uri().path().as_bytes()).map_err(refused(Place::Path))?;
    scan(Syntax::Url, req.query_string().as_bytes()).map_err(refused(Place::Query))
}

type BoxedStream = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// A body flowing to the handler, scanned on its way.
struct Scanning {
    inner: BoxedStream,
    scanner: Scanner,
    failed: bool,
}

impl Stream for Scanning {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let item = match this.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => match this.scanner.feed(&chunk) {
                Ok(()) => Some(Ok(chunk)),
                Err(found) => {
                    this.failed = true;
                    Some(Err(PayloadError::Io(io::Error::new(
                        io::ErrorKind::InvalidData,
                        Refused {
                            place: Place::Body,
                            found,
                        },
                    ))))
                }
            },
            Poll::Ready(other) => other,
            Poll::Pending => return Poll::Pending,
        };
        Poll::Ready(item)
    }
}

fn stream_payload(stream: impl Stream<Item = Result<Bytes, PayloadError>> + 'static) -> Payload {
    Payload::Stream {
        payload: Box::pin(stream),
    }
}

/// Reads the body, up to `limit` bytes, scanning it; puts it back for the
/// handler unless it holds a control character.
async fn inspect_body(
    req: &mut ServiceRequest,
    syntax: Syntax,
    limit: usize,
) -> Result<(), Refused> {
    let mut scanner = Scanner::new(syntax);
    let payload = req.take_payload();
    let encoded = req
        .headers()
        .get(CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let mut body: BoxedStream = if encoded {
        // Scan what the handler will read: the decoded body, handed on
        // decoded (its length is no longer the declared one).
        let decoded = Decompress::from_headers(payload, req.headers());
        req.headers_mut().remove(CONTENT_ENCODING);
        req.headers_mut().remove(CONTENT_LENGTH);
        Box::pin(decoded)
    } else {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            // Too large to hold here; the extractor refuses it (413) as
            // before, or a route with a larger limit reads it, scanned.
            req.set_payload(stream_payload(Scanning {
                inner: Box::pin(payload),
                scanner,
                failed: false,
            }));
            return Ok(());
        }
        Box::pin(payload)
    };
    let mut held: Vec<Bytes> = Vec::new();
    let mut size = 0;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // A broken read: the handler's extractor answers it as before.
                let replay =
                    stream::iter(held.into_iter().map(Ok)).chain(stream::once(ready(Err(e))));
                req.set_payload(stream_payload(replay));
                return Ok(());
            }
        };
        scanner.feed(&chunk).map_err(|found| Refused {
            place: Place::Body,
            found,
        })?;
        size += chunk.len();
        held.push(chunk);
        if size > limit {
            let rest = Scanning {
                inner: body,
                scanner,
                failed: false,
            };
            req.set_payload(stream_payload(
                stream::iter(held.into_iter().map(Ok)).chain(rest),
            ));
            return Ok(());
        }
    }
    let whole = match held.len() {
        0 => Bytes::new(),
        1 => held.pop().unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(size);
            for c in &held {
                all.extend_from_slice(c);
            }
            all.freeze()
        }
    };
    req.set_payload(Payload::from(whole));
    Ok(())
}

/// The middleware: `App::new().wrap(RejectControlCharacters::new(max_body_bytes))`,
/// inside the request span so that refusals are logged and counted.
#[derive(Debug, Clone, Copy)]
pub struct RejectControlCharacters {
    max_body_bytes: usize,
}

impl RejectControlCharacters {
    /// `max_body_bytes`: the most a body held for inspection may hold (the
    /// service's JSON body limit).
    pub fn new(max_body_bytes: usize) -> Self {
        Self { max_body_bytes }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RejectControlCharacters
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RejectControlCharactersService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RejectControlCharactersService {
            service: Rc::new(service),
            limit: self.max_body_bytes,
        }))
    }
}

pub struct RejectControlCharactersService<S> {
    service: Rc<S>,
    limit: usize,
}

impl<S, B> Service<ServiceRequest> for RejectControlCharactersService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        if let Err(refused) = check_target(&req) {
            let resp = req.error_response(refused.problem());
            return Box::pin(ready(Ok(resp.map_into_right_body())));
        }
        let Some(syntax) = body_syntax(req.headers()) else {
            let fut = self.service.call(req);
            return Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) });
        };
        let service = Rc::clone(&self.service);
        let limit = self.limit;
        Box::pin(async move {
            match inspect_body(&mut req, syntax, limit).await {
                Ok(()) => service
                    .call(req)
                    .await
                    .map(ServiceResponse::map_into_left_body),
                Err(refused) => Ok(req.error_response(refused.problem()).map_into_right_body()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(syntax: Syntax, text: &str) -> Option<u8> {
        scan(syntax, text.as_bytes()).err().map(|f| f.code)
    }

    #[test]
    fn json_escapes_of_control_characters_are_found() {
        assert_eq!(code(Syntax::Json, r#"{"username":"a\u0000b"}"#), Some(0));
        assert_eq!(code(Syntax::Json, r#"{"a":"\u001F"}"#), Some(0x1f));
        assert_eq!(code(Syntax::Json, r#"{"a":"\u007f"}"#), Some(0x7f));
        assert_eq!(code(Syntax::Json, r#"{"a":"x\by"}"#), Some(0x08));
        assert_eq!(code(Syntax::Json, r#"{"a":"x\fy"}"#), Some(0x0c));
        assert_eq!(code(Syntax::Json, r#"{"a\u0001":1}"#), Some(1));
        // A real escape after an escaped backslash.
        assert_eq!(code(Syntax::Json, r#"{"a":"\\\u0000"}"#), Some(0));
        // Raw control bytes are not JSON, and refused all the same.
        assert_eq!(code(Syntax::Json, "{\"a\":\"x\u{0}\"}"), Some(0));
        assert_eq!(code(Syntax::Json, "{\"a\":\"x\\\u{1}\"}"), Some(1));
    }

    #[test]
    fn clean_json_and_escaped_backslashes_pass() {
        for text in [
            r#"{"username":"alice","password":"S3cret!"}"#,
            r#"{"a":"\\u0000"}"#,
            r#"{"a":"\\\\u0000"}"#,
            r#"{"description":"line one\nline two\r\n\ttabbed"}"#,
            r#"{"a":"\u0009\u000a\u000D\u0020\u00e9\u2028\ud83d\ude00"}"#,
            r#"{"a":"\"quoted\" \/ slash","b":[1,2.5,true,null]}"#,
            "{\n\t\"pretty\": \"printed\"\r\n}",
            r#"{"a":"\u00"}"#,
            "{\"caf\u{e9}\":\"na\u{ef}ve \u{1F600}\"}",
            "",
        ] {
            assert_eq!(scan(Syntax::Json, text.as_bytes()), Ok(()), "{text}");
        }
    }

    #[test]
    fn percent_encoded_controls_are_found_in_urls_and_forms() {
        assert_eq!(code(Syntax::Url, "user_id=%00"), Some(0));
        assert_eq!(code(Syntax::Url, "a=1&b=x%7Fy"), Some(0x7f));
        assert_eq!(code(Syntax::Url, "/v1/tasks/%1b"), Some(0x1b));
        assert_eq!(
            code(Syntax::Form, "client_id=demo%00&grant_type=x"),
            Some(0)
        );
        assert_eq!(code(Syntax::Form, "client_id=%01"), Some(1));
        // `%2500` is a percent sign, then "00".
        assert_eq!(code(Syntax::Url, "q=%2500"), None);
        assert_eq!(code(Syntax::Form, "q=100%&r=%zz&s=%%00"), Some(0));
        assert_eq!(code(Syntax::Form, "q=100%&r=%zz&s=%0"), None);
    }

    #[test]
    fn tab_and_line_breaks_pass_in_bodies_but_not_in_urls() {
        assert_eq!(code(Syntax::Form, "text=a%0D%0Ab%09c+d"), None);
        assert_eq!(code(Syntax::Form, "text=a\r\n"), None);
        assert_eq!(code(Syntax::Url, "state=a%0D%0ALocation:x"), Some(0x0d));
        assert_eq!(code(Syntax::Url, "q=a%09"), Some(0x09));
        assert_eq!(code(Syntax::Text, "a,b\r\nc,\td\n"), None);
        assert_eq!(code(Syntax::Text, "a,b\nc,d\0\n"), Some(0));
    }

    #[test]
    fn clean_urls_and_forms_pass() {
        for text in [
            "",
            "/v1/users/0190a8f2-0000-7000-8000-000000000000",
            "user_id=42&active=true&username_prefix=al%C3%A9",
            "grant_type=client_credentials&client_id=demo-service&scope=su_read%3Atask+x",
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback&state=%20",
        ] {
            assert_eq!(scan(Syntax::Url, text.as_bytes()), Ok(()), "{text}");
            assert_eq!(scan(Syntax::Form, text.as_bytes()), Ok(()), "{text}");
        }
    }

    #[test]
    fn an_escape_split_across_chunks_is_still_found() {
        let text = br#"{"a":"xx\u0000"}"#;
        for cut in 0..text.len() {
            let mut s = Scanner::new(Syntax::Json);
            let first = s.feed(&text[..cut]);
            let second = first.and_then(|()| s.feed(&text[cut..]));
            assert_eq!(second, Err(Found { code: 0, offset: 8 }), "cut at {cut}");
        }
        let text = b"a=1&b=%7f";
        for cut in 0..text.len() {
            let mut s = Scanner::new(Syntax::Form);
            let r = s.feed(&text[..cut]).and_then(|()| s.feed(&text[cut..]));
            assert_eq!(r.map_err(|f| f.code), Err(0x7f), "cut at {cut}");
        }
        let mut s = Scanner::new(Syntax::Json);
        assert_eq!(s.feed(br#"{"a":"\"#), Ok(()));
        assert_eq!(s.feed(br#"\u0000"}"#), Ok(()));
    }

    #[test]
    fn the_body_syntax_follows_the_media_type() {
        let of = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, ct.parse().unwrap());
            body_syntax(&h)
        };
        assert_eq!(of("application/json"), Some(Syntax::Json));
        assert_eq!(of("Application/JSON; charset=utf-8"), Some(Syntax::Json));
        assert_eq!(of("application/merge-patch+json"), Some(Syntax::Json));
        assert_eq!(
            of("application/x-www-form-urlencoded;charset=UTF-8"),
            Some(Syntax::Form)
        );
        assert_eq!(of("text/csv"), Some(Syntax::Text));
        assert_eq!(of("application/octet-stream"), None);
        assert_eq!(of("text/plain"), None);
        assert_eq!(body_syntax(&HeaderMap::new()), None);
    }

    #[test]
    fn the_problem_names_the_rule_and_the_place() {
        let p = Refused {
            place: Place::Query,
            found: Found { code: 0, offset: 8 },
        }
        .problem();
        let body = serde_json::to_value(&p).unwrap();
        assert_eq!(body["status"], 400);
        assert_eq!(body["rule"], RULE);
        assert_eq!(body["in"], "query");
        assert!(body["detail"].as_str().unwrap().contains("U+0000"));
    }

    mod middleware {
        use actix_web::{http::StatusCode, test, web, App, HttpResponse};

        use super::super::*;
        use crate::problem::extractors;

        /// Echoes the JSON it parsed, or the raw body.
        async fn echo_json(body: web::Json<serde_json::Value>) -> HttpResponse {
            HttpResponse::Ok().json(body.into_inner())
        }

        async fn echo_raw(body: web::Bytes) -> HttpResponse {
            HttpResponse::Ok().body(body)
        }

        async fn echo_form(
            form: web::Form<std::collections::HashMap<String, String>>,
        ) -> HttpResponse {
            HttpResponse::Ok().json(form.into_inner())
        }

        macro_rules! app {
            () => {
                test::init_service(
                    App::new()
                        .wrap(RejectControlCharacters::new(64))
                        .app_data(extractors::json_config(64))
                        .app_data(extractors::form_config())
                        .route("/json", web::post().to(echo_json))
                        .route("/raw", web::post().to(echo_raw))
                        .route("/form", web::post().to(echo_form))
                        .service(
                            web::resource("/big")
                                .app_data(extractors::json_config(4096))
                                .route(web::post().to(echo_json)),
                        ),
                )
                .await
            };
        }

        async fn problem<B: actix_web::body::MessageBody>(
            resp: ServiceResponse<B>,
        ) -> serde_json::Value {
            assert_eq!(
                resp.headers().get(CONTENT_TYPE).unwrap(),
                "application/problem+json"
            );
            test::read_body_json(resp).await
        }

        #[actix_web::test]
        async fn a_clean_body_reaches_the_handler_unchanged() {
            let app = app!();
            let body = "{\"a\": \"x\\\\u0000\\nz\"}";
            let req = test::TestRequest::post()
                .uri("/raw?x=1")
                .insert_header((CONTENT_TYPE, "application/json"))
                .set_payload(body)
                .to_request();
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(test::read_body(resp).await, body.as_bytes());
        }

        #[actix_web::test]
        async fn a_control_character_anywhere_answers_400_naming_where() {
            let app = app!();
            let cases = [
                ("/json", "application/json", r#"{"a":"\u0000"}"#, "body"),
                (
                    "/form",
                    "application/x-www-form-urlencoded",
                    "a=%00",
                    "body",
                ),
                ("/json?user_id=%00", "application/json", "{}", "query"),
                ("/json/%01", "application/json", "{}", "path"),
            ];
            for (uri, ctype, body, place) in cases {
                let req = test::TestRequest::post()
                    .uri(uri)
                    .insert_header((CONTENT_TYPE, ctype))
                    .set_payload(body)
                    .to_request();
                let resp = test::call_service(&app, req).await;
                assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri} {body}");
                let p = problem(resp).await;
                assert_eq!(p["rule"], RULE);
                assert_eq!(p["in"], place, "{uri} {body}");
            }
        }

        #[actix_web::test]
        async fn a_body_beyond_the_limit_is_still_413() {
            let app = app!();
            let body = format!(r#"{{"a":"{}"}}"#, "x".repeat(100));
            let req = test::TestRequest::post()
                .uri("/json")
                .insert_header((CONTENT_TYPE, "application/json"))
                .set_payload(body)
                .to_request();
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        }

        #[actix_web::test]
        async fn a_route_with_a_larger_limit_gets_its_body_scanned_as_it_reads() {
            let app = app!();
            let clean = format!(r#"{{"a":"{}"}}"#, "x".repeat(1000));
            let req = test::TestRequest::post()
                .uri("/big")
                .insert_header((CONTENT_TYPE, "application/json"))
                .set_payload(clean)
                .to_request();
            assert_eq!(test::call_service(&app, req).await.status(), StatusCode::OK);
            let dirty = format!(r#"{{"a":"{}\u0000"}}"#, "x".repeat(1000));
            let req = test::TestRequest::post()
                .uri("/big")
                .insert_header((CONTENT_TYPE, "application/json"))
                .set_payload(dirty)
                .to_request();
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            assert_eq!(problem(resp).await["rule"], RULE);
        }
    }
}
