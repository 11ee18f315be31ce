# The operator's tables (see src/iotpm/adapters/registry.py): the device registry, the
# configuration documents (the limits, each device's alarm controls) and the audit trail.
# Point-in-time recovery and the CMK as for the pipeline's tables; nothing expires.

locals {
  operator_tables = {
    registry = {
      hash    = "device_id", range = null, attributes = { device_id = "S", gateway = "S" }
      indexes = { by_gateway = { hash = "gateway", range = "device_id" } }
    }
    config = { hash = "name", range = null, attributes = { name = "S" }, indexes = {} }
    audit  = { hash = "stream", range = "sk", attributes = { stream = "S", sk = "S" }, indexes = {} }
  }
}

resource "aws_dynamodb_table" "operator" {
  for_each                    = local.operator_tables
  name                        = "${var.name}-${each.key}"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.hash
  range_key                   = each.value.range
  deletion_protection_enabled = var.deletion_protection

  dynamic "attribute" {
    for_each = each.value.attributes
    content {
      name = attribute.key
      type = attribute.value
    }
  }

  dynamic "global_secondary_index" {
    for_each = each.value.indexes
    content {
      name            = global_secondary_index.key
      hash_key        = global_secondary_index.value.hash
      range_key       = global_secondary_index.value.range
      projection_type = "ALL"
    }
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}

output "operator_table_names" {
  description = "The operator's DynamoDB tables by role (registry, config, audit)."
  value       = { for k, t in aws_dynamodb_table.operator : k => t.name }
}

output "operator_table_arns" {
  description = "The operator's DynamoDB table ARNs by role (registry, config, audit)."
  value       = { for k, t in aws_dynamodb_table.operator : k => t.arn }
}

variable "registrations" {
  type = map(object({
    device_type = string
    site        = string
    line        = string
    gateway     = optional(string)
  }))
  description = "Devices to seed the registry with (the pipeline's things); later changes go through the API or iotpm devices import."
  default     = {}
}

# Seeded once: an operator's later registration (API, iotpm devices import) is not reverted by an apply.
resource "aws_dynamodb_table_item" "registration" {
  for_each   = var.registrations
  table_name = aws_dynamodb_table.operator["registry"].name
  hash_key   = "device_id"
  item = jsonencode(merge({
    device_id   = { S = each.key }
    site        = { S = each.value.site }
    line        = { S = each.value.line }
    device_type = { S = each.value.device_type }
    overrides   = { S = "{}" }
    version     = { N = "1" }
    updated_ms  = { N = "0" }
    updated_by  = { S = "terraform" }
  }, each.value.gateway == null ? {} : { gateway = { S = each.value.gateway } })) # the by_gateway index's key
  lifecycle {
    ignore_changes = [item]
  }
}
