# The processor reads the operator's registry and configuration (src/iotpm/service/config_cache.py):
# BatchGetItem and GetItem only; it never writes them and never reads the audit trail.

variable "operator_tables" {
  type        = map(string)
  description = "The operator's table names by role (registry, config, audit); empty: no registry, the shipped limits."
  default     = {}

  validation {
    condition     = length(var.operator_tables) == 0 || alltrue([for k in ["registry", "config", "audit"] : contains(keys(var.operator_tables), k)])
    error_message = "operator_tables must name registry, config and audit (or be empty)."
  }
}

variable "operator_table_arns" {
  type        = map(string)
  description = "The operator's table ARNs by role (registry, config, audit)."
  default     = {}
}

variable "operator_cache_ttl_s" {
  type        = number
  description = "How old a cached registration, alarm control or limits document may be (a change applies within it)."
  default     = 30

  validation {
    condition     = var.operator_cache_ttl_s >= 0 && var.operator_cache_ttl_s <= 60
    error_message = "operator_cache_ttl_s must be within 0-60 s."
  }
}

variable "unregistered_devices" {
  type        = string
  description = "Where an unregistered device's readings go: payload (its message's site/line/type), unassigned, or quarantine (unregistered_device)."
  default     = "payload"

  validation {
    condition     = contains(["payload", "unassigned", "quarantine"], var.unregistered_devices)
    error_message = "unregistered_devices must be payload, unassigned or quarantine."
  }
}

locals {
  operator_env = length(var.operator_tables) > 0 ? {
    IOTPM_REGISTRY_TABLE       = var.operator_tables["registry"]
    IOTPM_CONFIG_TABLE         = var.operator_tables["config"]
    IOTPM_AUDIT_TABLE          = var.operator_tables["audit"]
    IOTPM_OPERATOR_CACHE_TTL_S = tostring(var.operator_cache_ttl_s)
    IOTPM_UNREGISTERED_DEVICES = var.unregistered_devices
  } : {}
  operator_statements = length(var.operator_table_arns) > 0 ? [{
    Sid      = "OperatorRead"
    Effect   = "Allow"
    Action   = ["dynamodb:BatchGetItem", "dynamodb:GetItem"]
    Resource = [var.operator_table_arns["registry"], var.operator_table_arns["config"]]
  }] : []
}
