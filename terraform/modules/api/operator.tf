# The operator's writes: registration, limits, acknowledge, shelve, re-baseline (src/iotpm/api/routes/operator.py).
# Reads keep the API key and usage plan (the ANY method in main.tf); every write method on the
# proxy is IAM-authorized, so it is a SigV4-signed request (curl --aws-sigv4) from a principal
# holding the operator or the admin policy below, and the function sees that principal in the
# request context (who the audit trail names).

variable "operator_tables" {
  type        = map(string)
  description = "The operator's table names by role (registry, config, audit); empty: the operator routes answer 503."
  default     = {}
}

variable "operator_table_arns" {
  type        = map(string)
  description = "The operator's table ARNs by role (registry, config, audit)."
  default     = {}
}

locals {
  write_methods = toset(["PUT", "POST", "PATCH", "DELETE"])
  operator_env = length(var.operator_tables) > 0 ? {
    IOTPM_REGISTRY_TABLE = var.operator_tables["registry"]
    IOTPM_CONFIG_TABLE   = var.operator_tables["config"]
    IOTPM_AUDIT_TABLE    = var.operator_tables["audit"]
  } : {}
  # exactly the calls of src/iotpm/adapters/registry.py the API makes
  operator_statements = length(var.operator_table_arns) > 0 ? [
    {
      Sid      = "OperatorRegistry"
      Effect   = "Allow"
      Action   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchGetItem"]
      Resource = [var.operator_table_arns["registry"], var.operator_table_arns["config"]]
    },
    { Sid = "OperatorAudit", Effect = "Allow", Action = ["dynamodb:PutItem", "dynamodb:Query"], Resource = [var.operator_table_arns["audit"]] },
  ] : []
  invoke = "${aws_api_gateway_rest_api.this.execution_arn}/${var.stage_name}"
  # the alarm workflow: an operator on shift
  operator_routes = [
    "${local.invoke}/POST/devices/*/alarm/acknowledge",
    "${local.invoke}/POST/devices/*/alarm/shelve",
    "${local.invoke}/POST/devices/*/rebaseline",
  ]
  # what changes the plant's model: the registry and the limits
  admin_routes = [
    "${local.invoke}/PUT/devices/*/registration",
    "${local.invoke}/PUT/config/limits",
    "${local.invoke}/PUT/config/detector",
  ]
}

resource "aws_api_gateway_method" "write" {
  # checkov:skip=CKV2_AWS_53:the Lambda validates every body with pydantic (400 naming the field); a request validator would duplicate the contract
  for_each         = local.write_methods
  rest_api_id      = aws_api_gateway_rest_api.this.id
  resource_id      = aws_api_gateway_resource.proxy.id
  http_method      = each.key
  authorization    = "AWS_IAM"
  api_key_required = false
}

resource "aws_api_gateway_integration" "write" {
  for_each                = local.write_methods
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.proxy.id
  http_method             = aws_api_gateway_method.write[each.key].http_method
  integration_http_method = "POST"
  type                    = "AWS_PROXY"
  uri                     = module.function.invoke_arn
}

resource "aws_iam_policy" "operator" {
  name        = "${var.name}-api-operator"
  description = "iotpm: acknowledge, shelve and re-baseline alarms through the API (SigV4)"
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Sid = "AlarmWorkflow", Effect = "Allow", Action = ["execute-api:Invoke"], Resource = local.operator_routes }]
  })
  tags = var.tags
}

resource "aws_iam_policy" "admin" {
  name        = "${var.name}-api-admin"
  description = "iotpm: the operator's rights plus the device registry and the limits through the API (SigV4)"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid      = "OperatorAndConfiguration", Effect = "Allow", Action = ["execute-api:Invoke"]
      Resource = concat(local.operator_routes, local.admin_routes)
    }]
  })
  tags = var.tags
}

output "operator_policy_arn" {
  description = "Attach to an operator's role or group: acknowledge, shelve, re-baseline (SigV4 requests)."
  value       = aws_iam_policy.operator.arn
}

output "admin_policy_arn" {
  description = "Attach to a plant administrator: the operator's rights plus registration and limits."
  value       = aws_iam_policy.admin.arn
}
