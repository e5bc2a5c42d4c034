# Evaluation gate: score the current champion on the candidate's holdout (unwrap its data
# keys), verify manifests, and sign the manifest of the version it registers. It cannot
# create data keys (sealing stays with training) and reads no API keys.
path "transit/decrypt/artifacts" {
  capabilities = ["update"]
}

path "transit/verify/manifests" {
  capabilities = ["update"]
}

path "transit/sign/manifests" {
  capabilities = ["update"]
}
