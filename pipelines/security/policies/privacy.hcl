# Privacy: answers data subjects (erasure, objection to automated decisions). It keeps the registers of
# erased and objecting subjects (hashes only), and re-seals and re-signs a model version's reference sample
# after an erasure, which needs decrypting it, a fresh data key and the signing key. It reads the PII salt.
# The same paths as airflow.hcl's read (Vault takes the most specific path, not the union of the policies').
path "platform/data/governance/+/erased" {
  capabilities = ["create", "read", "update"]
}

path "platform/data/governance/+/objections" {
  capabilities = ["create", "read", "update"]
}

path "platform/data/airflow/variables/pii_salt" {
  capabilities = ["read"]
}

path "transit/decrypt/artifacts" {
  capabilities = ["update"]
}

path "transit/datakey/plaintext/artifacts" {
  capabilities = ["update"]
}

path "transit/sign/manifests" {
  capabilities = ["update"]
}

path "transit/verify/manifests" {
  capabilities = ["update"]
}
