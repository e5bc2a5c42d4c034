# Serving: verify manifests, unwrap data keys to decrypt artifacts, read API-key hashes.
# It can neither sign a manifest nor create a data key.
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
