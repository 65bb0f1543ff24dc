//! users: who can place orders.
//!
//! `POST /users {"name","email"}` → 201; 400 invalid; 409 duplicate email.
//! `GET /users/{id}` → 200 or 404.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::db::{now_ms, Db};
use crate::error::{ApiError, Json, Path};
use crate::service::{Built, ServiceContext, StartError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/users");

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, PartialEq, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
}

/// A user to create. The patterns are the rules its handler checks, so a
/// client can tell a valid user before sending it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Anything with a character that is not whitespace; stored trimmed.
    #[schema(pattern = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")]
    pub name: String,
    /// `local@domain`, the domain with a dot in it (surrounding whitespace
    /// is trimmed). Unique, compared in ASCII lower case.
    #[schema(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^@\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^@]*@[\s\S]*\."
    )]
    pub email: String,
}

impl NewUser {
    pub(crate) fn validate(&self) -> Result<(), ApiError> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("name must not be empty");
        }
        let email = self.email.trim();
        let valid_email = email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        if !valid_email {
            problems.push("email must look like name@example.com");
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request("invalid user").with_detail(problems))
        }
    }
}

pub fn app(db: Db) -> Router {
    Router::new()
        .route("/users", post(create))
        .route("/users/{id}", get(fetch))
        .with_state(db)
}

pub async fn build(ctx: &ServiceContext) -> Result<Built, StartError> {
    let db = ctx.db(&MIGRATOR).await?;
    let mut built = Built::new(app(db.clone()));
    built.db = Some(db);
    Ok(built)
}

async fn create(
    State(db): State<Db>,
    Json(new): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    new.validate()?;
    let email = new.email.trim().to_ascii_lowercase();
    let inserted = sqlx::query_as::<_, User>(
        "INSERT INTO users (name, email, created_at) VALUES (?, ?, ?)
         ON CONFLICT (email) DO NOTHING RETURNING id, name, email",
    )
    .bind(new.name.trim())
    .bind(&email)
    .bind(now_ms())
    .fetch_optional(&mut *db.write.acquire().await?)
    .await?;
    match inserted {
        Some(user) => Ok((StatusCode::CREATED, Json(user))),
        None => Err(ApiError::conflict(format!(
            "a user with email {email} already exists"
        ))),
    }
}

async fn fetch(State(db): State<Db>, Path(id): Path<i64>) -> Result<Json<User>, ApiError> {
    sqlx::query_as::<_, User>("SELECT id, name, email FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(&db.read)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("user", id))
}
