//! `casegate share`: create, list, show, resend and revoke shares through a running gateway's
//! admin API.

mod client;
mod format;
mod view;

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use serde::Deserialize as _;
use serde::de::DeserializeOwned;

use self::client::{AdminClient, AdminError, AdminUrl, Answer, BearerToken, encode_component};
use self::view::{CaseRevoked, ShareList, ShareRow};

/// Where the admin API is when neither --admin nor CASEGATE_ADMIN_URL says: the shipped config's
/// `[admin] listen`.
const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9901";
const ADMIN_URL_ENV: &str = "CASEGATE_ADMIN_URL";

/// Bad invocation or environment (missing token, bad URL): the same code clap uses for usage errors.
const EXIT_USAGE: u8 = 2;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
The bearer token of an [[admin.clients]] entry is read from CASEGATE_ADMIN_TOKEN (never from a flag, \
so it does not show in the process list). The admin API is plain HTTP/1.1 only: keep it on loopback or \
a private network, or reach it through an SSH tunnel.

Exit status: 0 done, 1 the admin API refused or could not be reached, 2 bad usage or environment.")]
pub struct ShareArgs {
    /// Admin API base URL, plain http only [env: CASEGATE_ADMIN_URL] [default: http://127.0.0.1:9901]
    #[arg(long, global = true, value_name = "URL")]
    admin: Option<String>,
    #[command(subcommand)]
    action: ShareAction,
}

#[derive(Subcommand, Debug)]
enum ShareAction {
    /// Create a share and print its link, then its id and expiry.
    Create(CreateArgs),
    /// List shares as a table, newest first.
    List {
        /// Only shares of this case.
        #[arg(long)]
        case: Option<String>,
        /// Only shares in this state.
        #[arg(long, value_enum)]
        status: Option<StatusFilter>,
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Show everything known about one share.
    Show {
        /// The share id (the link token's jti). Base64url: it may start with `-`.
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one share by id; also works for a link minted outside the API.
    Revoke {
        /// The share id (the link token's jti). Base64url: it may start with `-`.
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Email a share's link to its recipient again (re-signed with the active key; same share).
    Resend {
        /// The share id (the link token's jti). Base64url: it may start with `-`.
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke every link of a case issued up to now, including links minted outside the API.
    RevokeCase {
        /// The case id.
        #[arg(allow_hyphen_values = true)]
        case: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// The case to share.
    #[arg(long)]
    case: String,
    /// The scope (set of allowed routes) the link grants; the admin client must be allowed it.
    #[arg(long)]
    scope: String,
    /// Lifetime such as 90m, 24h, 7d, or whole seconds (default: the gateway's links.default_ttl).
    #[arg(long)]
    ttl: Option<String>,
    /// The recipient's email address, carried in the link.
    #[arg(long)]
    email: Option<String>,
    /// The language the case is shown in (e.g. sv-SE).
    #[arg(long)]
    lang: Option<String>,
    /// A note for the share list (at most 500 characters), e.g. why it was shared.
    #[arg(long)]
    note: Option<String>,
    /// Who asked for the share (at most 200 characters), shown in the list.
    #[arg(long)]
    created_by: Option<String>,
    /// Email the link to --email once the share is recorded (needs [mail] on the gateway).
    #[arg(long, requires = "email")]
    send_email: bool,
    /// Print the API's JSON (it holds the token) instead of the link and a summary.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StatusFilter {
    Pending,
    Active,
    Expired,
    Revoked,
}

impl StatusFilter {
    fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Pending => "pending",
            StatusFilter::Active => "active",
            StatusFilter::Expired => "expired",
            StatusFilter::Revoked => "revoked",
        }
    }
}

pub fn run(args: &ShareArgs) -> ExitCode {
    let url_from_env = std::env::var(ADMIN_URL_ENV).ok();
    let url_text = admin_url_text(args.admin.as_deref(), url_from_env.as_deref());
    let url = match AdminUrl::parse(url_text) {
        Ok(url) => url,
        Err(error) => {
            eprintln!("error: admin URL: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let token = match BearerToken::from_env() {
        Ok(token) => token,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // One request at a time: a single-threaded runtime is all this needs.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let client = AdminClient::new(url, token);
    match runtime.block_on(execute(&client, &args.action)) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            // A share created before its invitation failed still exists: show it, so the
            // operator has its link and id (to resend), and fail all the same.
            if let AdminError::Api {
                share: Some(share), ..
            } = &error
                && let Ok(share) = ShareRow::deserialize(share)
            {
                print!("{}", view::created_summary(&share));
            }
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// --admin wins, then a non-empty CASEGATE_ADMIN_URL, then the default.
fn admin_url_text<'a>(flag: Option<&'a str>, env: Option<&'a str>) -> &'a str {
    flag.or(env.filter(|text| !text.is_empty()))
        .unwrap_or(DEFAULT_ADMIN_URL)
}

/// Sends the action's request and renders the answer (the text to print on stdout).
async fn execute(client: &AdminClient, action: &ShareAction) -> Result<String, AdminError> {
    let now = casegate::clock::unix_now();
    match action {
        ShareAction::Create(create) => {
            let answer = client
                .post("/v1/shares", Some(&create_body(create)))
                .await?;
            ensure_live(&answer)?;
            render(&answer, create.json, |share: ShareRow| {
                let mut text = view::created_summary(&share);
                if create.send_email {
                    text.push_str(&view::invitation_summary(&share));
                }
                text
            })
        }
        ShareAction::List { case, status, json } => {
            let answer = client
                .get(&list_path(
                    case.as_deref(),
                    status.map(StatusFilter::as_str),
                ))
                .await?;
            render(&answer, *json, |list: ShareList| {
                view::share_table(&list.shares, now)
            })
        }
        ShareAction::Show { id, json } => {
            let answer = client.get(&share_path(id)).await?;
            render(&answer, *json, |share: ShareRow| {
                view::share_details(&share, now)
            })
        }
        ShareAction::Revoke { id, json } => {
            let answer = client.delete(&share_path(id)).await?;
            render(&answer, *json, |share: ShareRow| {
                view::revoked_summary(&share)
            })
        }
        ShareAction::Resend { id, json } => {
            let path = format!("{}/resend", share_path(id));
            let answer = client.post(&path, None).await?;
            render(&answer, *json, |share: ShareRow| {
                view::invitation_summary(&share)
            })
        }
        ShareAction::RevokeCase { case, json } => {
            let path = format!("/v1/cases/{}/revoke", encode_component(case));
            let answer = client.post(&path, None).await?;
            render(&answer, *json, |revoked: CaseRevoked| {
                view::case_revoked_summary(&revoked)
            })
        }
    }
}

/// A create must answer with a share whose link opens. Should a gateway answer with one that is
/// revoked or expired, that is an error and the link is not printed (not even with `--json`): a
/// script would pass it on as if it worked. An answer without a share's fields is left to
/// `render` to report.
fn ensure_live(answer: &Answer) -> Result<(), AdminError> {
    match ShareRow::deserialize(&answer.json) {
        Ok(share) if !share.is_live() => Err(AdminError::ShareNotLive {
            id: share.id,
            status: share.status,
        }),
        _ => Ok(()),
    }
}

/// The API's own bytes for `--json`; otherwise the answer read as `T` and shown by `show`.
fn render<T: DeserializeOwned>(
    answer: &Answer,
    json: bool,
    show: impl FnOnce(T) -> String,
) -> Result<String, AdminError> {
    if json {
        let mut text = String::from_utf8_lossy(&answer.body).into_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        return Ok(text);
    }
    let value = T::deserialize(&answer.json).map_err(|error| AdminError::UnexpectedAnswer {
        status: http::StatusCode::OK,
        reason: format!("the answer does not have the expected fields: {error}"),
    })?;
    Ok(show(value))
}

/// The POST /v1/shares body with only the fields given; a ttl of bare digits is whole seconds.
fn create_body(create: &CreateArgs) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    body.insert("case".to_owned(), create.case.clone().into());
    body.insert("scope".to_owned(), create.scope.clone().into());
    if let Some(ttl) = &create.ttl {
        let value = match ttl.parse::<u64>() {
            Ok(seconds) if casegate::config::is_whole_seconds(ttl) => seconds.into(),
            _ => ttl.clone().into(),
        };
        body.insert("ttl".to_owned(), value);
    }
    for (name, value) in [
        ("email", &create.email),
        ("lang", &create.lang),
        ("note", &create.note),
        ("created_by", &create.created_by),
    ] {
        if let Some(value) = value {
            body.insert(name.to_owned(), value.clone().into());
        }
    }
    if create.send_email {
        body.insert("send_email".to_owned(), true.into());
    }
    serde_json::Value::Object(body)
}

fn list_path(case: Option<&str>, status: Option<&str>) -> String {
    let mut query = Vec::new();
    if let Some(case) = case {
        query.push(format!("case={}", encode_component(case)));
    }
    if let Some(status) = status {
        query.push(format!("status={status}"));
    }
    if query.is_empty() {
        "/v1/shares".to_owned()
    } else {
        format!("/v1/shares?{}", query.join("&"))
    }
}

fn share_path(id: &str) -> String {
    format!("/v1/shares/{}", encode_component(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Args;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<ShareArgs, clap::Error> {
        let args = Args::try_parse_from(std::iter::once("casegate").chain(args.iter().copied()))?;
        match args.command {
            crate::cli::Command::Share(share) => Ok(share),
            other => panic!("not share: {other:?}"),
        }
    }

    /// A share id is base64url, so one in 32 starts with `-`: it is the id, not an option, with
    /// `--json` before or after it.
    #[test]
    fn a_share_id_starting_with_a_hyphen_is_the_id() {
        for action in ["show", "revoke", "resend"] {
            for args in [
                vec!["share", action, "-Fq3Zk0", "--json"],
                vec!["share", action, "--json", "-Fq3Zk0"],
                vec!["share", action, "-Fq3Zk0"],
            ] {
                let parsed = parse(&args).unwrap_or_else(|error| panic!("{args:?}: {error}"));
                let (ShareAction::Show { id, json }
                | ShareAction::Revoke { id, json }
                | ShareAction::Resend { id, json }) = &parsed.action
                else {
                    panic!("{parsed:?}")
                };
                assert_eq!(id, "-Fq3Zk0", "{args:?}");
                assert_eq!(*json, args.contains(&"--json"), "{args:?}");
            }
        }
        let parsed = parse(&["share", "revoke-case", "-7", "--json"]).unwrap();
        assert!(
            matches!(&parsed.action, ShareAction::RevokeCase { case, json: true } if case == "-7")
        );
    }

    #[test]
    fn create_sends_only_the_given_fields_and_bare_digits_as_seconds() {
        let args = parse(&[
            "share", "create", "--case", "42", "--scope", "view", "--ttl", "3600", "--note", "n",
        ])
        .unwrap();
        let ShareAction::Create(create) = &args.action else {
            panic!("{args:?}")
        };
        assert_eq!(
            create_body(create),
            serde_json::json!({"case": "42", "scope": "view", "ttl": 3600, "note": "n"})
        );
        let args = parse(&[
            "share",
            "create",
            "--case",
            "42",
            "--scope",
            "guest",
            "--ttl",
            "24h",
            "--email",
            "a@b.se",
            "--lang",
            "sv-SE",
            "--created-by",
            "dr.lind",
        ])
        .unwrap();
        let ShareAction::Create(create) = &args.action else {
            panic!("{args:?}")
        };
        assert_eq!(
            create_body(create),
            serde_json::json!({"case": "42", "scope": "guest", "ttl": "24h", "email": "a@b.se",
                "lang": "sv-SE", "created_by": "dr.lind"})
        );
    }

    #[test]
    fn send_email_asks_for_the_invitation_and_needs_an_address() {
        let args = parse(&[
            "share",
            "create",
            "--case",
            "42",
            "--scope",
            "view",
            "--email",
            "a@b.se",
            "--send-email",
        ])
        .unwrap();
        let ShareAction::Create(create) = &args.action else {
            panic!("{args:?}")
        };
        assert_eq!(
            create_body(create),
            serde_json::json!({"case": "42", "scope": "view", "email": "a@b.se", "send_email": true})
        );
        assert!(
            parse(&[
                "share",
                "create",
                "--case",
                "42",
                "--scope",
                "view",
                "--send-email"
            ])
            .is_err()
        );
        assert!(parse(&["share", "resend", "abc"]).is_ok());
        assert!(parse(&["share", "resend"]).is_err());
    }

    #[test]
    fn create_needs_case_and_scope() {
        assert!(parse(&["share", "create", "--case", "42"]).is_err());
        assert!(parse(&["share", "create", "--scope", "view"]).is_err());
    }

    #[test]
    fn list_accepts_only_the_four_statuses() {
        let args = parse(&["share", "list", "--status", "active", "--case", "4 2"]).unwrap();
        let ShareAction::List { case, status, json } = &args.action else {
            panic!("{args:?}")
        };
        assert!(!json);
        assert_eq!(
            list_path(case.as_deref(), status.map(StatusFilter::as_str)),
            "/v1/shares?case=4%202&status=active"
        );
        assert_eq!(list_path(None, None), "/v1/shares");
        assert!(parse(&["share", "list", "--status", "gone"]).is_err());
    }

    #[test]
    fn admin_url_may_come_before_or_after_the_action() {
        for args in [
            &["share", "--admin", "http://10.0.0.1:1", "show", "abc"][..],
            &["share", "show", "abc", "--admin", "http://10.0.0.1:1"][..],
        ] {
            assert_eq!(
                parse(args).unwrap().admin.as_deref(),
                Some("http://10.0.0.1:1")
            );
        }
    }

    #[test]
    fn admin_url_comes_from_the_flag_then_the_environment_then_the_default() {
        assert_eq!(
            admin_url_text(Some("http://a:1"), Some("http://b:2")),
            "http://a:1"
        );
        assert_eq!(admin_url_text(None, Some("http://b:2")), "http://b:2");
        assert_eq!(admin_url_text(None, Some("")), DEFAULT_ADMIN_URL);
        assert_eq!(admin_url_text(None, None), DEFAULT_ADMIN_URL);
    }

    #[test]
    fn ids_and_cases_cannot_escape_their_path_segment() {
        assert_eq!(
            share_path("../cases/42/revoke"),
            "/v1/shares/..%2Fcases%2F42%2Frevoke"
        );
        assert!(parse(&["share", "revoke-case", "42"]).is_ok());
        assert!(parse(&["share", "revoke"]).is_err());
    }

    #[test]
    fn json_mode_prints_the_api_bytes_and_table_mode_needs_the_fields() {
        let body = bytes::Bytes::from_static(br#"{"shares": []}"#);
        let answer = Answer {
            json: serde_json::from_slice(&body).unwrap(),
            body,
        };
        assert_eq!(
            render(&answer, true, |_: ShareList| String::new()).unwrap(),
            "{\"shares\": []}\n"
        );
        assert_eq!(
            render(&answer, false, |list: ShareList| list
                .shares
                .len()
                .to_string())
            .unwrap(),
            "0"
        );
        assert!(render(&answer, false, |_: CaseRevoked| String::new()).is_err());
    }
}
