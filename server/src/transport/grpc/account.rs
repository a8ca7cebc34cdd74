//! `kitsulan.v1.AccountService`: the caller's own account.

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::account_service_server::AccountService;
use tonic::{Request, Response, Status};

use super::{Context, parse_ids};
use crate::services::accounts::{EmailChange, PasswordChange};
use crate::store::AccountRecord;

pub struct AccountApi(pub Context);

fn account(a: AccountRecord) -> Option<pb::Account> {
    Some(pb::Account {
        id: a.id.to_string(),
        username: a.username,
        display_name: a.display_name,
        email: a.email.unwrap_or_default(),
        email_verified: a.email_verified,
        totp_enabled: a.totp_secret.is_some(),
        created_at_ms: a.created_at_ms,
        avatar: super::avatar_info(a.avatar_id, a.avatar_version),
    })
}

fn profile(a: AccountRecord) -> pb::Profile {
    pb::Profile {
        account_id: a.id.to_string(),
        avatar: super::avatar_info(a.avatar_id, a.avatar_version),
        username: a.username,
        display_name: a.display_name,
    }
}

#[tonic::async_trait]
impl AccountService for AccountApi {
    async fn lookup_account(
        &self,
        request: Request<pb::LookupAccountRequest>,
    ) -> Result<Response<pb::LookupAccountResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let a = self.0.services.accounts.lookup(&caller, &request.get_ref().username).await?;
        Ok(Response::new(pb::LookupAccountResponse { profile: Some(profile(a)) }))
    }

    async fn get_profiles(
        &self,
        request: Request<pb::GetProfilesRequest>,
    ) -> Result<Response<pb::GetProfilesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let ids = parse_ids(&request.get_ref().account_ids, "account_ids")?;
        let accounts = self.0.services.accounts.profiles(&caller, &ids).await?;
        Ok(Response::new(pb::GetProfilesResponse { profiles: accounts.into_iter().map(profile).collect() }))
    }

    async fn get_my_account(
        &self,
        request: Request<pb::GetMyAccountRequest>,
    ) -> Result<Response<pb::GetMyAccountResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let a = self.0.services.accounts.get(&caller).await?;
        Ok(Response::new(pb::GetMyAccountResponse { account: account(a) }))
    }

    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::UpdateProfileResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let a = self.0.services.accounts.update_profile(&caller, &request.get_ref().display_name).await?;
        Ok(Response::new(pb::UpdateProfileResponse { account: account(a) }))
    }

    type ExportAccountStream = std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<pb::ExportAccountResponse, Status>> + Send + 'static>,
    >;

    async fn export_account(
        &self,
        request: Request<pb::ExportAccountRequest>,
    ) -> Result<Response<Self::ExportAccountStream>, Status> {
        let caller = self.0.caller(&request).await?;
        let (parts, mut rx) = tokio::sync::mpsc::channel(4);
        let services = self.0.services.clone();
        let first = tokio::spawn(async move {
            let failed = parts.clone();
            if let Err(e) = services.accounts.export(&caller, parts).await {
                let _ = failed.send(Err(e)).await;
            }
        });
        drop(first);
        // The first part (or the refusal) decides the status, so a refused export is an error
        // status rather than an empty stream.
        let head = match rx.recv().await {
            Some(Ok(part)) => part,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(Status::internal("the export ended before it began")),
        };
        let mut writer = super::export::ExportWriter::default();
        let first = writer.write(head);
        let chunks = futures_util::stream::unfold(
            (rx, writer, Some(first), false),
            |(mut rx, mut writer, pending, done)| async move {
                if let Some(text) = pending {
                    return Some((
                        Ok(pb::ExportAccountResponse { json: text.into_bytes() }),
                        (rx, writer, None, done),
                    ));
                }
                if done {
                    return None;
                }
                match rx.recv().await {
                    Some(Ok(part)) => {
                        let text = writer.write(part);
                        Some((
                            Ok(pb::ExportAccountResponse { json: text.into_bytes() }),
                            (rx, writer, None, false),
                        ))
                    }
                    Some(Err(e)) => Some((Err(Status::from(e)), (rx, writer, None, true))),
                    None => {
                        let text = writer.finish();
                        Some((
                            Ok(pb::ExportAccountResponse { json: text.into_bytes() }),
                            (rx, writer, None, true),
                        ))
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> Result<Response<pb::DeleteAccountResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.client(&request);
        let r = request.get_ref();
        let done =
            self.0.services.accounts.delete_account(&caller, client, &r.password, &r.totp_code).await?;
        Ok(Response::new(pb::DeleteAccountResponse {
            conversations_left: u32::try_from(done.conversations).unwrap_or(u32::MAX),
            messages_deleted: done.messages,
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.client(&request);
        let r = request.get_ref();
        let change = PasswordChange {
            current: &r.current_password,
            totp_code: &r.totp_code,
            new: &r.new_password,
            keep_other_devices: r.keep_other_devices,
        };
        let signed_out = self.0.services.accounts.change_password(&caller, client, change).await?;
        Ok(Response::new(pb::ChangePasswordResponse {
            devices_signed_out: u32::try_from(signed_out).unwrap_or(u32::MAX),
        }))
    }

    async fn set_email(
        &self,
        request: Request<pb::SetEmailRequest>,
    ) -> Result<Response<pb::SetEmailResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.client(&request);
        let a = self
            .0
            .services
            .accounts
            .set_email(
                &caller,
                client,
                EmailChange {
                    email: &request.get_ref().email,
                    current_password: &request.get_ref().current_password,
                    totp_code: &request.get_ref().totp_code,
                },
            )
            .await?;
        Ok(Response::new(pb::SetEmailResponse { account: account(a) }))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Result<Response<pb::VerifyEmailResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.client(&request);
        let a = self.0.services.accounts.verify_email(&caller, client, &request.get_ref().code).await?;
        Ok(Response::new(pb::VerifyEmailResponse { account: account(a) }))
    }

    async fn begin_totp_enrollment(
        &self,
        request: Request<pb::BeginTotpEnrollmentRequest>,
    ) -> Result<Response<pb::BeginTotpEnrollmentResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.client(&request);
        let e = self.0.services.accounts.begin_totp(&caller, client, &request.get_ref().password).await?;
        Ok(Response::new(pb::BeginTotpEnrollmentResponse {
            secret_base32: e.secret_base32,
            otpauth_uri: e.otpauth_uri,
        }))
    }

    async fn confirm_totp_enrollment(
        &self,
        request: Request<pb::ConfirmTotpEnrollmentRequest>,
    ) -> Result<Response<pb::ConfirmTotpEnrollmentResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let a = self.0.services.accounts.confirm_totp(&caller, &request.get_ref().code).await?;
        Ok(Response::new(pb::ConfirmTotpEnrollmentResponse { account: account(a) }))
    }

    async fn disable_totp(
        &self,
        request: Request<pb::DisableTotpRequest>,
    ) -> Result<Response<pb::DisableTotpResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.client(&request);
        let r = request.get_ref();
        let a = self.0.services.accounts.disable_totp(&caller, client, &r.password, &r.code).await?;
        Ok(Response::new(pb::DisableTotpResponse { account: account(a) }))
    }
}
