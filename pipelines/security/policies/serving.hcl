# Serving: verify manifests, unwrap data keys to decrypt artifacts, read API-key hashes, and
# read the PII salt (a request carries a tail number in clear; the features are keyed by its
# salted hash), and the PostgreSQL connections named platform_postgres* (prediction log and audit
# ledger in the production configuration). It can neither sign a manifest nor create a data key.
path "transit/decrypt/artifacts" {
  capabilities = ["update"]
}

path "transit/verify/manifests" {
  capabilities = ["update"]
}

path "platform/data/serving/api-keys/*" {
  capabilities = ["read"]
}

path "platform/metadata/serving/api-keys/*" {
  capabilities = ["list"]
}

path "platform/data/airflow/variables/pii_salt" {
  capabilities = ["read"]
}

path "platform/data/airflow/connections/platform_postgres*" {
  capabilities = ["read"]
}

# The subjects who object to automated decisions (hashes only): answered human_review, never scored.
path "platform/data/governance/+/objections" {
  capabilities = ["read"]
}
