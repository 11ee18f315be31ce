# The operator's controls (terraform/modules/api/operator.tf, storage/registry.tf): the policies to attach
# to the people who run the plant, and the tables `iotpm devices import` writes to.

output "operator_policy_arn" {
  description = "IAM policy for operators: acknowledge, shelve and re-baseline through the API (SigV4)."
  value       = module.api.operator_policy_arn
}

output "admin_policy_arn" {
  description = "IAM policy for plant administrators: the operator's rights plus registration and limits."
  value       = module.api.admin_policy_arn
}

output "operator_table_names" {
  description = "The registry, config and audit tables (IOTPM_REGISTRY_TABLE, IOTPM_CONFIG_TABLE, IOTPM_AUDIT_TABLE)."
  value       = module.storage.operator_table_names
}
