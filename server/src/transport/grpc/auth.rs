//! `kitsulan.v1.AuthService`: sign-up, sign-in, refresh, sign-out.

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::auth_service_server::AuthService;
use tonic::{Request, Response, Status};

use super::Context;
use crate::services::auth::{NewSession, SignUp};

pub struct AuthApi(pub Context);

pub fn session(s: NewSession) -> pb::Session {
    pb::Session {
        account_id: s.account_id.to_string(),
        device_id: s.device_id.to_string(),
        access_token: s.access_token,
        access_expires_at_ms: s.access_expires_at_ms,
        refresh_token: s.refresh_token,
        refresh_expires_at_ms: s.refresh_expires_at_ms,
        password_reset_until_ms: s.password_reset_until_ms,
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn get_auth_methods(
        &self,
        _request: Request<pb::GetAuthMethodsRequest>,
    ) -> Result<Response<pb::GetAuthMethodsResponse>, Status> {
        let methods = self.0.services.auth.methods();
        Ok(Response::new(pb::GetAuthMethodsResponse {
            password: methods.password,
            email_code: methods.email_code,
            sign_up_open: methods.sign_up_open,
        }))
    }

    async fn sign_up(
        &self,
        request: Request<pb::SignUpRequest>,
    ) -> Result<Response<pb::SignUpResponse>, Status> {
        let client = self.0.client(&request);
        let r = request.into_inner();
        let new = SignUp {
            username: &r.username,
            password: &r.password,
            display_name: &r.display_name,
            email: &r.email,
            device_name: &r.device_name,
        };
        let s = self.0.services.auth.sign_up(client, new).await?;
        Ok(Response::new(pb::SignUpResponse { session: Some(session(s)) }))
    }

    async fn sign_in(
        &self,
        request: Request<pb::SignInRequest>,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let client = self.0.client(&request);
        let r = request.into_inner();
        let s = self
            .0
            .services
            .auth
            .sign_in(client, &r.username, &r.password, &r.device_name, &r.totp_code)
            .await?;
        Ok(Response::new(pb::SignInResponse { session: Some(session(s)) }))
    }

    async fn request_sign_in_code(
        &self,
        request: Request<pb::RequestSignInCodeRequest>,
    ) -> Result<Response<pb::RequestSignInCodeResponse>, Status> {
        let client = self.0.client(&request);
        self.0.services.auth.request_sign_in_code(client, &request.get_ref().email).await?;
        Ok(Response::new(pb::RequestSignInCodeResponse {}))
    }

    async fn sign_in_with_code(
        &self,
        request: Request<pb::SignInWithCodeRequest>,
    ) -> Result<Response<pb::SignInWithCodeResponse>, Status> {
        let client = self.0.client(&request);
        let r = request.into_inner();
        let s = self
            .0
            .services
            .auth
            .sign_in_with_code(client, &r.login, &r.code, &r.device_name, &r.totp_code)
            .await?;
        Ok(Response::new(pb::SignInWithCodeResponse { session: Some(session(s)) }))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let client = self.0.client(&request);
        let s = self.0.services.auth.refresh(client, &request.get_ref().refresh_token).await?;
        Ok(Response::new(pb::RefreshResponse { session: Some(session(s)) }))
    }

    async fn sign_out(
        &self,
        request: Request<pb::SignOutRequest>,
    ) -> Result<Response<pb::SignOutResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        self.0.services.auth.sign_out(&caller).await?;
        Ok(Response::new(pb::SignOutResponse {}))
    }
}
