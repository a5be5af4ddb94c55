//! Mail: a delivery as a message, and the SMTP relay it is handed to.

use lettre::{
    message::{header::ContentType, Mailbox},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
        extension::ClientId,
    },
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::{
    config::{Smtp, StartTls},
    error::SendError,
    store::Claimed,
};

/// The `Message-ID` of notification `id`: the same at every attempt, so
/// that a receiver can recognise a message sent again after a crash between
/// the relay's acceptance and its record.
pub fn message_id(id: Uuid, domain: &str) -> String {
    format!("<{id}@{domain}>")
}

/// The relay and the sender's address.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The domain of `from`, which ends each `Message-ID`.
    domain: String,
}

impl Mailer {
    /// A mailer for `smtp`: connections are opened when a message is sent,
    /// so a relay that is away does not stop the start.
    pub fn new(smtp: &Smtp) -> anyhow::Result<Self> {
        let from: Mailbox = smtp
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("MAIL_FROM={:?} is not an address: {e}", smtp.from))?;
        let domain = from.email.domain().to_owned();
        let tls = match smtp.starttls {
            StartTls::Off => Tls::None,
            StartTls::Opportunistic => Tls::Opportunistic(TlsParameters::new(smtp.host.clone())?),
            StartTls::Required => Tls::Required(TlsParameters::new(smtp.host.clone())?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(smtp.timeout));
        if let Some(name) = &smtp.helo_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            domain,
        })
    }

    /// The message of a delivery: from the sender, to every recipient,
    /// plain text, with its notification's `Message-ID`.
    pub fn message(&self, d: &Claimed) -> Result<Message, SendError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .message_id(Some(message_id(d.id, &self.domain)))
            .subject(d.subject.clone())
            .header(ContentType::TEXT_PLAIN);
        for to in &d.recipients {
            let mailbox: Mailbox = to
                .parse()
                .map_err(|e| SendError::Invalid(format!("recipient {to:?}: {e}")))?;
            builder = builder.to(mailbox);
        }
        builder
            .body(d.body.clone())
            .map_err(|e| SendError::Invalid(format!("message: {e}")))
    }

    /// Hands the delivery's message to the relay.
    pub async fn send(&self, d: &Claimed) -> Result<(), SendError> {
        let message = self.message(d)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(SendError::from)
    }
}
