# The report shows each open alarm's state (acknowledged, shelved) from the operator's tables:
# it reads the registry and config through the in-process API (GetItem), never writes them.

variable "operator_tables" {
  type        = map(string)
  description = "The operator's table names by role (registry, config, audit); empty: alarms shown without their state."
  default     = {}
}

variable "operator_table_arns" {
  type        = map(string)
  description = "The operator's table ARNs by role (registry, config, audit)."
  default     = {}
}

locals {
  operator_env = length(var.operator_tables) > 0 ? {
    IOTPM_REGISTRY_TABLE = var.operator_tables["registry"]
    IOTPM_CONFIG_TABLE   = var.operator_tables["config"]
    IOTPM_AUDIT_TABLE    = var.operator_tables["audit"]
  } : {}
  operator_statements = length(var.operator_table_arns) > 0 ? [{
    Sid      = "OperatorRead"
    Effect   = "Allow"
    Action   = ["dynamodb:GetItem"]
    Resource = [var.operator_table_arns["registry"], var.operator_table_arns["config"]]
  }] : []
}
