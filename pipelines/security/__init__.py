"""Security: Vault, secrets, sealed artifacts and signed manifests, the artifact store, residency, the audit ledger."""
