//! `kitsulan.v1.KeyService`: the E2EE public-key directory.

use kitsulan_proto::v1 as pb;
use kitsulan_proto::v1::key_service_server::KeyService;
use tonic::{Request, Response, Status};

use super::{Context, parse_ids};
use crate::services::keys::{SignedKeyInput, UploadInput};
use crate::store::SignedKeyRecord;

pub struct KeyApi(pub Context);

fn input(key: &pb::SignedKey) -> SignedKeyInput<'_> {
    SignedKeyInput { key_id: key.key_id, public_key: &key.public_key, signature: &key.signature }
}

fn signed_key(key: SignedKeyRecord) -> pb::SignedKey {
    pb::SignedKey {
        key_id: u64::try_from(key.key_id).unwrap_or_default(),
        public_key: key.public_key,
        signature: key.signature,
    }
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn publish_account_key(
        &self,
        request: Request<pb::PublishAccountKeyRequest>,
    ) -> Result<Response<pb::PublishAccountKeyResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        self.0.services.keys.publish_account_key(&caller, &r.account_key, r.replace).await?;
        Ok(Response::new(pb::PublishAccountKeyResponse {}))
    }

    async fn upload_keys(
        &self,
        request: Request<pb::UploadKeysRequest>,
    ) -> Result<Response<pb::UploadKeysResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let upload = UploadInput {
            certificate: &r.device_certificate,
            one_time_keys: r.one_time_keys.iter().map(input).collect(),
            fallback_key: r.fallback_key.as_ref().map(input),
        };
        let counts = self.0.services.keys.upload(&caller, upload).await?;
        Ok(Response::new(pb::UploadKeysResponse {
            one_time_key_count: counts.one_time_keys,
            has_fallback_key: counts.has_fallback_key,
        }))
    }

    async fn get_key_counts(
        &self,
        request: Request<pb::GetKeyCountsRequest>,
    ) -> Result<Response<pb::GetKeyCountsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let counts = self.0.services.keys.counts(&caller).await?;
        Ok(Response::new(pb::GetKeyCountsResponse {
            one_time_key_count: counts.one_time_keys,
            has_fallback_key: counts.has_fallback_key,
        }))
    }

    async fn query_keys(
        &self,
        request: Request<pb::QueryKeysRequest>,
    ) -> Result<Response<pb::QueryKeysResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let ids = parse_ids(&request.get_ref().account_ids, "account_ids")?;
        let accounts = self.0.services.keys.query(&caller, &ids).await?;
        Ok(Response::new(pb::QueryKeysResponse {
            accounts: accounts
                .into_iter()
                .map(|a| pb::AccountKeys {
                    account_id: a.account_id.to_string(),
                    account_key: a.account_key.unwrap_or_default(),
                    device_list_version: u64::try_from(a.device_list_version).unwrap_or_default(),
                    devices: a
                        .devices
                        .into_iter()
                        .map(|d| pb::DeviceKeys {
                            device_id: d.device_id.to_string(),
                            certificate: d.certificate,
                            ed25519: d.ed25519,
                            curve25519: d.curve25519,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn claim_keys(
        &self,
        request: Request<pb::ClaimKeysRequest>,
    ) -> Result<Response<pb::ClaimKeysResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let ids = parse_ids(&request.get_ref().device_ids, "device_ids")?;
        let claimed = self.0.services.keys.claim(&caller, &ids).await?;
        Ok(Response::new(pb::ClaimKeysResponse {
            keys: claimed
                .into_iter()
                .map(|(device, c)| pb::ClaimedKey {
                    device_id: device.to_string(),
                    fallback: c.fallback,
                    key: Some(signed_key(c.key)),
                })
                .collect(),
        }))
    }
}
