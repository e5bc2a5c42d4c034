# Airflow and the platform's pipeline tasks: read connections and variables
# (database credentials, S3 keys, the PII-hashing salt). Nothing else.
path "platform/data/airflow/connections/*" {
  capabilities = ["read"]
}

path "platform/data/airflow/variables/*" {
  capabilities = ["read"]
}

# Landing leaves out the subjects erased since (hashes only).
path "platform/data/governance/+/erased" {
  capabilities = ["read"]
}

# Batch scoring answers an objecting subject human_review, as the model service does (hashes only).
path "platform/data/governance/+/objections" {
  capabilities = ["read"]
}
