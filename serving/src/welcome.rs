//! The registration scenario's last step, written the way a messaging team
//! would: hear `user.registered`, read the user's profile from the profile
//! API, and send a welcome e-mail tailored to it over SMTP.
//!
//! It runs inside `micro-serve` on the in-process bus when
//! `MICRO_WELCOME_SMTP_URL` is set, or on its own as `micro-welcome`, a
//! durable JetStream consumer of `micro.events.user.registered`. Either way it
//! only uses what any consumer has: the event and the public HTTP API.

use features::{Event, Profile};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum WelcomeError {
    #[error("event {0}: {1}")]
    Event(String, String),
    #[error("profile API: {0}")]
    Api(String),
    #[error("SMTP URL {0:?}: expected smtp://host[:port]")]
    SmtpUrl(String),
    #[error("e-mail: {0}")]
    Mail(String),
}

pub type Result<T, E = WelcomeError> = std::result::Result<T, E>;

/// Sends welcome e-mails for `user.registered` events.
#[derive(Clone, Debug)]
pub struct WelcomeMailer {
    api_base: reqwest::Url,
    http: reqwest::Client,
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl WelcomeMailer {
    /// `api_base`: where the profile API answers (`http://host:port`);
    /// `smtp_url`: `smtp://host[:port]` (plain SMTP, port 25 by default);
    /// `from`: the sender, e.g. `Micro <hello@example.com>`.
    pub fn new(api_base: &str, smtp_url: &str, from: &str) -> Result<WelcomeMailer> {
        let rest = smtp_url
            .strip_prefix("smtp://")
            .ok_or_else(|| WelcomeError::SmtpUrl(smtp_url.to_owned()))?;
        let (host, port) = match rest.trim_end_matches('/').rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse()
                    .map_err(|_| WelcomeError::SmtpUrl(smtp_url.to_owned()))?,
            ),
            None => (rest.trim_end_matches('/').to_owned(), 25),
        };
        let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .build();
        let api_base = reqwest::Url::parse(api_base)
            .ok()
            .filter(|u| !u.cannot_be_a_base())
            .ok_or_else(|| WelcomeError::Api(format!("{api_base:?} is not a base URL")))?;
        Ok(WelcomeMailer {
            api_base,
            http: reqwest::Client::new(),
            smtp,
            from: from
                .parse()
                .map_err(|e| WelcomeError::Mail(format!("sender {from:?}: {e}")))?,
        })
    }

    /// Handles one event: a welcome for `user.registered`, nothing for others.
    /// An error means "try again later" (API or SMTP unreachable).
    pub async fn handle(&self, event: &Event) -> Result<()> {
        if event.kind != "user.registered" {
            return Ok(());
        }
        let user_id = event.payload["userId"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| WelcomeError::Event(event.id.clone(), "no userId".into()))?;
        // The event names the user only (no personal data on the bus, SPEC
        // §10): the address and name come from the API.
        let user: serde_json::Value = self.get(&["users", &user_id]).await?;
        let field = |name: &str| user[name].as_str().map(str::to_owned);
        let email = field("email")
            .ok_or_else(|| WelcomeError::Api(format!("user {user_id} has no email")))?;
        let profile: Profile = self.get(&["profiles", &user_id]).await?;
        let to: Mailbox = match field("name") {
            Some(name) => format!("{name} <{email}>"),
            None => email.clone(),
        }
        .parse()
        .map_err(|e| WelcomeError::Event(event.id.clone(), format!("email {email:?}: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(match field("name") {
                Some(name) => format!("Welcome, {name}!"),
                None => "Welcome!".to_owned(),
            })
            .body(welcome_text(field("name").as_deref(), &profile))
            .map_err(|e| WelcomeError::Mail(e.to_string()))?;
        self.smtp
            .send(message)
            .await
            .map_err(|e| WelcomeError::Mail(e.to_string()))?;
        tracing::info!(user = %user_id, "welcome e-mail sent");
        Ok(())
    }

    /// `<api>/v1/profiles/<userId>`, the id encoded as one path segment.
    /// `<api>/v1/<segments…>`, each segment escaped.
    fn api_url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.api_base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        let url = self.api_url(segments);
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| WelcomeError::Api(e.to_string()))?;
        if !response.status().is_success() {
            return Err(WelcomeError::Api(format!("{url}: {}", response.status())));
        }
        response
            .json()
            .await
            .map_err(|e| WelcomeError::Api(e.to_string()))
    }
}

/// The message, tailored to what the profile knows already.
pub fn welcome_text(name: Option<&str>, profile: &Profile) -> String {
    let mut text = match name {
        Some(n) => format!("Hello {n},\n\nwelcome to Micro.\n"),
        None => "Hello,\n\nwelcome to Micro.\n".to_owned(),
    };
    if let Some(stage) = profile.about.real_life_stage {
        text.push_str(&format!(
            "\nWe'll pick offers that suit your stage of life ({}).\n",
            stage.as_str().replace('_', " ")
        ));
    }
    if !profile.topics.is_empty() {
        text.push_str(&format!(
            "\nYou've been looking at {}: we'll keep you posted.\n",
            profile.topics.join(", ")
        ));
    }
    text.push_str("\nThe Micro team\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_are_checked() {
        assert!(WelcomeMailer::new("http://x", "smtp://127.0.0.1:2525", "a@b.c").is_ok());
        assert!(WelcomeMailer::new("http://x", "smtp://mail.example.com", "a@b.c").is_ok());
        assert!(matches!(
            WelcomeMailer::new("http://x", "http://127.0.0.1:25", "a@b.c"),
            Err(WelcomeError::SmtpUrl(_))
        ));
        assert!(matches!(
            WelcomeMailer::new("http://x", "smtp://h:notaport", "a@b.c"),
            Err(WelcomeError::SmtpUrl(_))
        ));
    }

    #[test]
    fn ids_are_encoded_in_paths() {
        let mailer = WelcomeMailer::new("http://x:8080/", "smtp://h", "a@b.c").unwrap();
        assert!(mailer
            .api_url(&["profiles", "a b/c"])
            .as_str()
            .ends_with("/v1/profiles/a%20b%2Fc"));
    }
}
