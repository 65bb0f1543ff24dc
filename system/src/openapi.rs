//! The gateway's public API as an OpenAPI 3.1 document, derived with
//! `utoipa` from the types the services really (de)serialize: the request
//! bodies, query strings and responses below are the handlers' own types,
//! with their serde attributes (`deny_unknown_fields`, defaults) and the
//! bounds their validation enforces.
//!
//! The gateway proxies `/api/...` to services whose handlers answer under
//! other paths (`/users`, not `/api/users`), so the operations are declared
//! here, one documented function each, rather than on the handlers. What
//! the edge itself can answer on every `/api` operation (401 with an API
//! key configured, 413, 429 with a rate limit configured, 5xx when a
//! service is down or slow) is added by [`Edge`], so no operation forgets it.
//!
//! The gateway serves the document at `GET /openapi.json`; it is checked in
//! as `system/openapi.json`, and a test fails when the two differ. To
//! regenerate the file after changing an API type:
//!
//! ```text
//! GAUNTLET_BLESS=1 cargo test --release -p gauntlet-system openapi
//! ```

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::services::catalog::{NewProduct, Page, Product};
use crate::services::orders::{Flow, ListQuery, Order, OrderView, PlaceOrder, SagaEntry};
use crate::services::users::{NewUser, User};

/// The document, as `GET /openapi.json` serves it and `system/openapi.json`
/// holds it: pretty-printed, with a trailing newline.
pub fn document() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the OpenAPI document: {e}\"}}"));
    json.push('\n');
    json
}

/// `GET /openapi.json` (rendered once; the types do not change at run time).
pub async fn serve() -> Response {
    static DOC: LazyLock<String> = LazyLock::new(document);
    ([(header::CONTENT_TYPE, "application/json")], DOC.as_str()).into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gauntlet gateway",
        description = "The public API of Gauntlet's reference system, as its gateway serves \
            it. Every error, whoever answers it (the gateway or a service behind it), has one \
            JSON shape, `ErrorBody`. An integer in a body may be written `52` or `52.0`; past \
            2^52 in magnitude, only as an integer. A method a path does not take is answered 405 with `Allow`, \
            a path the API does not have 404. The gateway also serves `GET /services/status`, \
            and the operational `/health`, `/info`, `/metrics` and `/circuit-breakers`, which \
            are not part of this contract.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        create_user,
        get_user,
        list_products,
        create_product,
        get_product,
        list_orders,
        place_order,
        get_order
    ),
    components(schemas(ErrorBody, User, NewUser, Product, NewProduct, Order, OrderView, SagaEntry, PlaceOrder, Flow)),
    modifiers(&Edge, &Headers),
    tags(
        (name = "users", description = "Who can place orders."),
        (name = "products", description = "The catalog: products and their stock."),
        (name = "orders", description = "Orders, each seen through its saga."),
    )
)]
pub struct ApiDoc;

/// Creates a user.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "users",
    operation_id = "createUser",
    request_body(content = NewUser, content_type = "application/json"),
    responses(
        (status = 201, description = "Created.", body = User),
        (status = 400, description = "Malformed JSON, or a name or email that breaks the rules.", body = ErrorBody),
        (status = 409, description = "A user with this email (in ASCII lower case) exists.", body = ErrorBody),
        (status = 415, description = "The body is not declared JSON.", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape: a field missing, of the wrong type, or unknown.", body = ErrorBody),
    )
)]
pub fn create_user() {}

/// A user by id.
#[utoipa::path(
    get,
    path = "/api/users/{id}",
    tag = "users",
    operation_id = "getUser",
    params(("id" = i64, Path, description = "Any 64-bit integer; there is no user below 1.")),
    responses(
        (status = 200, description = "The user.", body = User),
        (status = 400, description = "The id is not a 64-bit integer.", body = ErrorBody),
        (status = 404, description = "No user has this id.", body = ErrorBody),
    )
)]
pub fn get_user() {}

/// A page of products, in id order.
#[utoipa::path(
    get,
    path = "/api/products",
    tag = "products",
    operation_id = "listProducts",
    params(Page),
    responses(
        (status = 200, description = "The page (empty past the last product).", body = Vec<Product>),
        (status = 400, description = "A query parameter that is not an integer, repeated, or unknown.", body = ErrorBody),
    )
)]
pub fn list_products() {}

/// Creates a product with its stock.
#[utoipa::path(
    post,
    path = "/api/products",
    tag = "products",
    operation_id = "createProduct",
    request_body(content = NewProduct, content_type = "application/json"),
    responses(
        (status = 201, description = "Created.", body = Product),
        (status = 400, description = "Malformed JSON, a blank name, or a negative price or stock.", body = ErrorBody),
        (status = 415, description = "The body is not declared JSON.", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape: a field missing, of the wrong type, or unknown.", body = ErrorBody),
    )
)]
pub fn create_product() {}

/// A product by id.
#[utoipa::path(
    get,
    path = "/api/products/{id}",
    tag = "products",
    operation_id = "getProduct",
    params(("id" = i64, Path, description = "Any 64-bit integer; there is no product below 1.")),
    responses(
        (status = 200, description = "The product.", body = Product),
        (status = 400, description = "The id is not a 64-bit integer.", body = ErrorBody),
        (status = 404, description = "No product has this id.", body = ErrorBody),
    )
)]
pub fn get_product() {}

/// Orders, in id order (for checkers: no saga logs).
#[utoipa::path(
    get,
    path = "/api/orders",
    tag = "orders",
    operation_id = "listOrders",
    params(ListQuery),
    responses(
        (status = 200, description = "The orders (empty past the last one).", body = Vec<Order>),
        (status = 400, description = "A query parameter of the wrong type, repeated, or unknown.", body = ErrorBody),
    )
)]
pub fn list_orders() {}

/// Places an order.
#[utoipa::path(
    post,
    path = "/api/orders",
    tag = "orders",
    operation_id = "placeOrder",
    description = "A `sync` order runs its saga (reserve stock, charge, confirm) while the \
        client waits; an `async` one is accepted at once and settled by events.",
    params((
        "Idempotency-Key" = Option<String>,
        Header,
        description = "Makes the request safe to repeat: the same key answers the same order \
            (200), however often it is sent. 1 to 200 visible ASCII characters (spaces and \
            tabs inside; surrounding whitespace is not part of the key).",
        max_length = 200,
        pattern = r"^[\t\x20-\x7e]*[\x21-\x7e][\t\x20-\x7e]*$"
    )),
    request_body(content = PlaceOrder, content_type = "application/json"),
    responses(
        (status = 200, description = "The order an earlier request with this `Idempotency-Key` placed, as it stands.", body = Order),
        (status = 201, description = "A sync order whose saga ended: `CONFIRMED`, or `CANCELLED` with its reason (out of stock, payment declined, ...).", body = Order),
        (status = 202, description = "An async order, accepted as `PENDING`; or a sync one still `PENDING` when its saga outlived the request (recovery finishes it).", body = Order),
        (status = 400, description = "Malformed JSON, a quantity below 1, or an `Idempotency-Key` that breaks the rules.", body = ErrorBody),
        (status = 415, description = "The body is not declared JSON.", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape (a field missing, of the wrong type, or unknown; a flow that is neither `sync` nor `async`), a user or product that does not exist, or a quantity whose total does not fit in 64 bits.", body = ErrorBody),
    )
)]
pub fn place_order() {}

/// An order by id, with its saga log.
#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    tag = "orders",
    operation_id = "getOrder",
    params(("id" = i64, Path, description = "Any 64-bit integer; there is no order below 1.")),
    responses(
        (status = 200, description = "The order and every step of its saga so far.", body = OrderView),
        (status = 400, description = "The id is not a 64-bit integer.", body = ErrorBody),
        (status = 404, description = "No order has this id.", body = ErrorBody),
    )
)]
pub fn get_order() {}

/// The name of the API-key security scheme.
const API_KEY: &str = "apiKey";

/// What the gateway's edge may answer on every `/api` operation, before or
/// instead of the service behind it: shared responses, and the optional API
/// key (optional in the document because it is a deployment's choice).
pub struct Edge;

impl Edge {
    /// Status, component name, description.
    const RESPONSES: &[(&str, &str, &str)] = &[
        (
            "401",
            "Unauthorized",
            "The gateway has an API key configured, and the request did not send it as \
             `Authorization: Bearer <key>`.",
        ),
        (
            "413",
            "PayloadTooLarge",
            "The request body is over 1 MiB (1048576 bytes).",
        ),
        (
            "429",
            "TooManyRequests",
            "The gateway has a rate limit configured, and the request was over it.",
        ),
        (
            "500",
            "InternalError",
            "A bug, or a database that failed; `detail` says what.",
        ),
        (
            "503",
            "Unavailable",
            "No healthy instance of the service, its circuit breaker is open, or its \
             database is busy: worth a retry later.",
        ),
        (
            "504",
            "Timeout",
            "The service did not answer in time; whether it acted is unknown (a POST with an \
             `Idempotency-Key` is safe to repeat).",
        ),
    ];
}

impl Modify for Edge {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The gateway's API key, when it has one configured (`gateway.api_key`).",
                    ))
                    .build(),
            ),
        );
        for (status, name, description) in Self::RESPONSES {
            let response = ResponseBuilder::new()
                .description(*description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            components
                .responses
                .insert(name.to_string(), RefOr::T(response));
            for (path, item) in openapi.paths.paths.iter_mut() {
                if !path.starts_with("/api/") {
                    continue;
                }
                for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
                    secure(op);
                }
            }
        }
    }
}

/// A header is absent or a string, never `null`: utoipa renders an
/// optional (`Option`) header as nullable, and a client would read that
/// as leave to send the empty value, which is refused.
pub struct Headers;

impl Modify for Headers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post].into_iter().flatten();
            for param in ops.flat_map(|op| op.parameters.iter_mut().flatten()) {
                if param.parameter_in != ParameterIn::Header {
                    continue;
                }
                if let Some(RefOr::T(Schema::Object(object))) = &mut param.schema {
                    if let SchemaType::Array(types) = &object.schema_type {
                        let types: Vec<Type> = types
                            .iter()
                            .filter(|t| **t != Type::Null)
                            .cloned()
                            .collect();
                        object.schema_type = match types.as_slice() {
                            [one] => SchemaType::Type(one.clone()),
                            _ => SchemaType::Array(types),
                        };
                    }
                }
            }
        }
    }
}

/// Either no credentials or the API key: which one the gateway wants is
/// its configuration's choice.
fn secure(op: &mut Operation) {
    op.security = Some(vec![
        SecurityRequirement::default(),
        SecurityRequirement::new(API_KEY, Vec::<String>::new()),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in copy, beside this crate's Cargo.toml.
    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

    #[test]
    fn the_checked_in_document_is_the_generated_one() {
        let generated = document();
        if std::env::var_os("GAUNTLET_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(CHECKED_IN, &generated).expect("system/openapi.json is writable");
            return;
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            checked_in == generated,
            "system/openapi.json differs from the document the API types generate; \
             if the change is meant, regenerate it with\n\n    \
             GAUNTLET_BLESS=1 cargo test --release -p gauntlet-system openapi\n\n\
             and commit it. First difference at line {}.",
            checked_in
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .map_or(
                    checked_in.lines().count().min(generated.lines().count()),
                    |i| i
                )
                + 1
        );
    }

    fn spec() -> serde_json::Value {
        serde_json::from_str(&document()).expect("the document is JSON")
    }

    #[test]
    fn it_is_openapi_3_1_and_every_error_has_the_one_shape() {
        let spec = spec();
        assert!(
            spec["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "{}",
            spec["openapi"]
        );
        let error_ref = serde_json::json!({"$ref": "#/components/schemas/ErrorBody"});
        let mut seen = 0;
        for (path, item) in spec["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                let responses = op["responses"].as_object().expect("responses");
                for want in ["401", "413", "429", "500", "503", "504"] {
                    assert!(responses.contains_key(want), "{method} {path}: no {want}");
                }
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{method} {path}"
                );
                for (status, response) in responses {
                    let response = match response["$ref"].as_str() {
                        Some(r) => {
                            let name = r.trim_start_matches("#/components/responses/");
                            &spec["components"]["responses"][name]
                        }
                        None => response,
                    };
                    let schema = &response["content"]["application/json"]["schema"];
                    if !status.starts_with('2') {
                        assert_eq!(schema, &error_ref, "{method} {path} {status}");
                        seen += 1;
                    }
                }
            }
        }
        assert!(seen > 8 * 6, "only {seen} error responses");
        let error = &spec["components"]["schemas"]["ErrorBody"];
        assert_eq!(error["required"], serde_json::json!(["error", "detail"]));
    }

    #[test]
    fn request_bodies_are_the_handlers_types_with_their_rules() {
        let spec = spec();
        let schemas = &spec["components"]["schemas"];
        for (name, required) in [
            ("NewUser", &["name", "email"][..]),
            ("NewProduct", &["name", "price_cents", "stock"]),
            ("PlaceOrder", &["user_id", "product_id", "quantity"]),
        ] {
            let s = &schemas[name];
            // Every one is `deny_unknown_fields`.
            assert_eq!(s["additionalProperties"], false, "{name}");
            assert_eq!(s["required"], serde_json::json!(required), "{name}");
        }
        assert_eq!(
            schemas["PlaceOrder"]["properties"]["quantity"]["minimum"],
            1
        );
        assert_eq!(
            schemas["Flow"]["enum"],
            serde_json::json!(["sync", "async"])
        );
        assert_eq!(schemas["NewProduct"]["properties"]["stock"]["minimum"], 0);
        let place = &spec["paths"]["/api/orders"]["post"];
        let key = &place["parameters"][0];
        assert_eq!(key["name"], "Idempotency-Key");
        assert_eq!(key["in"], "header");
        assert_eq!(key["required"], false);
        assert_eq!(key["schema"]["type"], "string");
    }

    /// The patterns in the document say what the handlers' validation
    /// does, character for character (Rust's whitespace is Unicode's).
    #[test]
    fn the_name_and_email_patterns_are_the_validation_rules() {
        let spec = spec();
        let schemas = &spec["components"]["schemas"];
        let pattern = |schema: &str, field: &str| {
            let p = schemas[schema]["properties"][field]["pattern"]
                .as_str()
                .unwrap_or_else(|| panic!("{schema}.{field} has a pattern"));
            regex::Regex::new(p).expect("a pattern the regex crate reads")
        };
        let user_name = pattern("NewUser", "name");
        let product_name = pattern("NewProduct", "name");
        let email = pattern("NewUser", "email");
        let mut samples: Vec<String> = vec![
            "".into(),
            "a".into(),
            " a ".into(),
            "a@b.c".into(),
            " a@b.c ".into(),
            "@b.c".into(),
            " @b.c".into(),
            "a@bc".into(),
            "a@.".into(),
            "a b@c d.".into(),
            "a@@b.c".into(),
            "a.b@c".into(),
            "\u{85}a@b.c\u{3000}".into(),
            "\u{1c}@b.c".into(),
            "\u{0}".into(),
            "a\n@\nb.c".into(),
        ];
        // Every character Unicode calls whitespace, and those near it.
        for c in (0u32..0x3100).filter_map(char::from_u32) {
            samples.push(c.to_string());
            samples.push(format!("{c}a@b.c"));
            samples.push(format!("{c}@b.c"));
            samples.push(format!("a@b{c}c"));
        }
        for s in &samples {
            let valid_name = !s.trim().is_empty();
            assert_eq!(user_name.is_match(s), valid_name, "name {s:?}");
            assert_eq!(product_name.is_match(s), valid_name, "name {s:?}");
            let user = NewUser {
                name: "n".into(),
                email: s.clone(),
            };
            assert_eq!(email.is_match(s), user.validate().is_ok(), "email {s:?}");
        }
    }

    /// The `Idempotency-Key` pattern is what orders takes: a header value
    /// `to_str` accepts, 1 to 200 long once the parser trimmed it.
    #[test]
    fn the_idempotency_key_pattern_is_what_orders_takes() {
        let spec = spec();
        let key = &spec["paths"]["/api/orders"]["post"]["parameters"][0]["schema"];
        let re = regex::Regex::new(key["pattern"].as_str().expect("a pattern")).expect("a regex");
        for b in 0u8..=255 {
            let s = (b as char).to_string();
            let taken = axum::http::HeaderValue::from_bytes(s.as_bytes())
                .ok()
                .and_then(|v| {
                    v.to_str()
                        .ok()
                        .map(|v| v.trim_matches([' ', '\t']).to_string())
                })
                .is_some_and(|v| !v.is_empty());
            assert_eq!(re.is_match(&s), taken, "{b:#x}");
        }
        assert!(re.is_match(" a\tb "));
        assert!(!re.is_match(" \t "));
    }
}
