# Training: seal artifacts (a fresh data key per artifact) and sign manifests.
# It can neither decrypt an artifact nor unwrap a data key.
path "transit/datakey/plaintext/artifacts" {
  capabilities = ["update"]
}

path "transit/sign/manifests" {
  capabilities = ["update"]
}

path "transit/verify/manifests" {
  capabilities = ["update"]
}
