//! Reaching the lake's object store: `object_store` settings from the TOML file's `[storage]`
//! table (only those that hold no secret, by an allow-list) and from the clouds' usual environment
//! variables, and the store's request timeout.

use crate::config::cli::StoreArgs;
use crate::config::{err, request_limit, ConfigError, Env, FileConfig};
use crate::lake::storage::StoreOptions;

/// Environment prefixes of the clouds' standard variables, as `object_store` reads them.
const STORE_ENV_PREFIXES: [&str; 3] = ["AWS_", "GOOGLE_", "AZURE_"];

/// `[storage]` keys the TOML file may set: object_store's settings that hold no secret (regions,
/// endpoints, bucket and account names, switches, identifiers and paths to credential files).
/// Anything else is refused, so a secret key that object_store adds later, or one spelled by an
/// alias, is refused too (a deny-list of words once let `aws_sse_customer_key_base64`,
/// `azure_storage_master_key`, `azure_storage_sas_key` and `azure_storage_encryption_key`
/// through).
///
/// Deliberately left out although not secret themselves: the container-credential URIs and the
/// token file that goes with them (`aws_container_credentials_*`,
/// `aws_container_authorization_token_file`): the container runtime sets them in the
/// environment, the relative URI is a bearer capability in ECS, and the full URI decides where
/// a credential token is sent. Also left out: client settings other than `*_allow_http`
/// (`proxy_url` may carry a password; `allow_invalid_certificates` turns TLS off) and the
/// Fabric runtime's settings.
const FILE_STORAGE_KEYS: &[&str] = &[
    // Amazon S3 and compatible stores.
    "aws_region",
    "aws_default_region",
    "aws_bucket",
    "aws_bucket_name",
    "aws_endpoint",
    "aws_endpoint_url",
    "aws_endpoint_url_s3",
    "aws_endpoint_url_sts",
    "aws_virtual_hosted_style_request",
    "aws_allow_http",
    "aws_conditional_put",
    "aws_copy_if_not_exists",
    "aws_skip_signature",
    "aws_checksum_algorithm",
    "aws_s3_express",
    "aws_unsigned_payload",
    "aws_imdsv1_fallback",
    "aws_metadata_endpoint",
    "aws_disable_tagging",
    "aws_disable_bulk_delete",
    "aws_request_payer",
    "aws_role_arn",
    "aws_role_session_name",
    "aws_web_identity_token_file",
    "aws_server_side_encryption",
    "aws_sse_kms_key_id",
    "aws_sse_bucket_key_enabled",
    // Google Cloud Storage: the service account's *path*, never its key.
    "google_bucket",
    "google_bucket_name",
    "google_service_account",
    "google_service_account_path",
    "google_application_credentials",
    "google_base_url",
    "google_skip_signature",
    "google_allow_http",
    // Azure Blob Storage.
    "azure_storage_account_name",
    "azure_container_name",
    "azure_storage_endpoint",
    "azure_endpoint",
    "azure_storage_use_emulator",
    "azure_use_fabric_endpoint",
    "azure_disable_tagging",
    "azure_skip_signature",
    "azure_allow_http",
    "azure_storage_client_id",
    "azure_client_id",
    "azure_storage_tenant_id",
    "azure_tenant_id",
    "azure_storage_authority_id",
    "azure_authority_id",
    "azure_storage_authority_host",
    "azure_authority_host",
    "azure_msi_endpoint",
    "azure_identity_endpoint",
    "azure_object_id",
    "azure_msi_resource_id",
    "azure_federated_token_file",
    "azure_use_azure_cli",
    "azure_credential_type",
];

/// Checks one `[storage]` key of the TOML file against [`FILE_STORAGE_KEYS`]. The message names
/// the key and the environment variable to use instead, never the value.
fn file_storage_key(key: &str) -> Result<String, ConfigError> {
    let key = key.to_ascii_lowercase();
    if FILE_STORAGE_KEYS.contains(&key.as_str()) {
        return Ok(key);
    }
    let known = STORE_ENV_PREFIXES
        .iter()
        .any(|p| key.starts_with(&p.to_ascii_lowercase()))
        && object_store_key(&key);
    if known {
        err(format!(
            "--config: [storage] {key} is not accepted in a file (it holds or leads to a secret); set it in the environment as {} instead",
            key.to_ascii_uppercase()
        ))
    } else {
        err(format!(
            "--config: [storage] {key} is not a storage setting a file may hold; use object_store's aws_*, google_* or azure_* names (e.g. aws_region, aws_endpoint), and put secrets in the environment"
        ))
    }
}

/// Whether `key` is one of object_store's setting keys.
fn object_store_key(key: &str) -> bool {
    use object_store::aws::AmazonS3ConfigKey;
    use object_store::azure::AzureConfigKey;
    use object_store::gcp::GoogleConfigKey;
    key.parse::<AmazonS3ConfigKey>().is_ok()
        || key.parse::<GoogleConfigKey>().is_ok()
        || key.parse::<AzureConfigKey>().is_ok()
}

/// Object-store settings: the TOML file's `[storage]` table, then the environment's `AWS_*`,
/// `GOOGLE_*` and `AZURE_*` variables that `object_store` knows (the environment wins).
pub(super) fn store(
    args: &StoreArgs,
    file: &FileConfig,
    env: &Env,
) -> Result<StoreOptions, ConfigError> {
    let mut settings = Vec::new();
    for (key, value) in &file.storage {
        settings.push((file_storage_key(key)?, value.clone()));
    }
    let mut from_env: Vec<(String, String)> = env
        .vars()
        .filter(|(k, _)| STORE_ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .filter(|(k, _)| object_store_key(k))
        .collect();
    from_env.sort();
    settings.extend(from_env);
    let timeout = request_limit("store-timeout", &args.store_timeout)?;
    Ok(StoreOptions {
        settings,
        allow_http: args.allow_http,
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_settings_come_from_the_file_and_the_environment_but_secrets_only_from_the_environment()
    {
        let settings =
            file("[storage]\naws_region = \"eu-west-1\"\naws_endpoint = \"http://127.0.0.1:9000\"");
        let env = Env::from_pairs([
            ("AWS_REGION", "us-east-2"),
            ("AWS_SECRET_ACCESS_KEY", "s3-SECRET"),
            ("AWS_PROFILE", "not-an-object-store-key"),
            ("HOME", "/root"),
        ]);
        let s = store(&StoreArgs::default(), &settings, &env).unwrap();
        let keys: Vec<&str> = s.settings.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "aws_endpoint",
                "aws_region",
                "aws_region",
                "aws_secret_access_key"
            ]
        );
        assert_eq!(
            s.settings[2].1, "us-east-2",
            "the environment comes last, so it wins"
        );
        assert!(!format!("{s:?}").contains("SECRET"));
        let secret = file("[storage]\naws_secret_access_key = \"x\"");
        let e = store(&StoreArgs::default(), &secret, &Env::default()).unwrap_err();
        assert!(e.0.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
    }

    fn file(text: &str) -> FileConfig {
        FileConfig::parse(text).unwrap()
    }

    #[test]
    fn secret_storage_keys_in_the_file_are_refused_by_an_allow_list() {
        // Regression: a deny-list of words let the first four through.
        for key in [
            "aws_sse_customer_key_base64",
            "azure_storage_master_key",
            "azure_storage_sas_key",
            "azure_storage_encryption_key",
            "aws_secret_access_key",
            "aws_session_token",
            "google_service_account_key",
            "azure_storage_account_key",
            "azure_client_secret",
            "aws_container_credentials_full_uri",
            "aws_proxy_url",
        ] {
            let f = file(&format!("[storage]\n{key} = \"value-Qz7\""));
            let e = store(&StoreArgs::default(), &f, &Env::default()).unwrap_err();
            assert!(e.0.contains(key), "{key}: {e}");
            assert!(e.0.contains(&key.to_ascii_uppercase()), "{key}: {e}");
            assert!(!e.0.contains("Qz7"), "{key}: {e}");
        }
        for key in ["region", "access_key", "aws_bogus", "bucket"] {
            let f = file(&format!("[storage]\n{key} = \"value-Qz7\""));
            let e = store(&StoreArgs::default(), &f, &Env::default()).unwrap_err();
            assert!(e.0.contains(key) && !e.0.contains("Qz7"), "{key}: {e}");
        }
    }

    #[test]
    fn settings_that_hold_no_secret_are_accepted_from_the_file() {
        let f = file(
            "[storage]\naws_region = \"eu-west-1\"\naws_endpoint_url = \"https://s3.example\"\n\
             aws_sse_kms_key_id = \"arn:aws:kms:key/1\"\ngoogle_service_account = \"/etc/sa.json\"\n\
             azure_storage_account_name = \"acct\"\nazure_container_name = \"c\"\n\
             azure_storage_use_emulator = \"true\"\naws_conditional_put = \"etag\"",
        );
        let s = store(&StoreArgs::default(), &f, &Env::default()).unwrap();
        assert_eq!(s.settings.len(), 8);
    }

    #[test]
    fn every_key_the_file_may_hold_is_an_object_store_key() {
        for key in FILE_STORAGE_KEYS {
            assert!(
                object_store_key(key),
                "{key} is not one of object_store's keys"
            );
        }
    }
}
