# Operators: rotate keys, rewrap data keys to the newest key version, manage the
# platform's secrets, read Vault's audit configuration. No decrypt: an operator
# moves sealed artifacts forward without ever seeing them.
path "transit/keys/artifacts" {
  capabilities = ["read"]
}

path "transit/keys/manifests" {
  capabilities = ["read"]
}

path "transit/keys/artifacts/rotate" {
  capabilities = ["update"]
}

path "transit/keys/manifests/rotate" {
  capabilities = ["update"]
}

path "transit/rewrap/artifacts" {
  capabilities = ["update"]
}

path "transit/verify/manifests" {
  capabilities = ["update"]
}

path "platform/data/*" {
  capabilities = ["create", "read", "update", "list"]
}

path "platform/metadata/*" {
  capabilities = ["read", "list"]
}

path "sys/audit" {
  capabilities = ["read", "sudo"]
}

# The compliance report matches the ledger's decrypts to the audit device's entries by their HMACs.
path "sys/audit-hash/*" {
  capabilities = ["update"]
}
