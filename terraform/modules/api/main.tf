# The analytics API: API Gateway REST (proxy to one Lambda), API key + usage plan, access logs.

module "function" {
  source       = "../function"
  name         = "${var.name}-api"
  description  = "iotpm analytics API (routes in src/iotpm/api/app.py, contract in openapi.json)"
  zip_path     = var.zip_path
  handler      = "iotpm.handlers.api.handler"
  architecture = var.architecture
  memory_mb    = var.memory_mb
  timeout_s    = 29
  environment = merge({
    IOTPM_ENVIRONMENT     = var.environment
    IOTPM_READINGS_TABLE  = var.tables["readings"]
    IOTPM_DEVICES_TABLE   = var.tables["devices"]
    IOTPM_ANOMALIES_TABLE = var.tables["anomalies"]
    IOTPM_ROLLUPS_TABLE   = var.tables["rollups"]
  }, local.operator_env) # the operator's tables: operator.tf
  policy_json        = local.policy_json
  subnet_ids         = var.subnet_ids
  security_group_ids = var.security_group_ids
  log_retention_days = var.log_retention_days
  kms_key_arn        = var.kms_key_arn
  tags               = var.tags
}

# Read-only: GetItem and Query on the tables and their indexes. No Scan.
locals {
  policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid      = "ReadTables"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:Query"]
        Resource = concat(values(var.table_arns), [for arn in values(var.table_arns) : "${arn}/index/*"])
      },
      # the fleet list reads a page of keys from a keys-only index, then the records by key
      { Sid = "ReadDevicesByKey", Effect = "Allow", Action = ["dynamodb:BatchGetItem"], Resource = [var.table_arns["devices"]] },
      { Sid = "DataKey", Effect = "Allow", Action = ["kms:Decrypt"], Resource = [var.kms_key_arn] },
    ], local.operator_statements) # the operator's writes: operator.tf
  })
}

resource "aws_api_gateway_rest_api" "this" {
  name        = "${var.name}-api"
  description = "iotpm analytics API"
  endpoint_configuration {
    types = ["REGIONAL"]
  }
  tags = var.tags
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "proxy" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "{proxy+}"
}

resource "aws_api_gateway_method" "proxy" {
  # checkov:skip=CKV2_AWS_53:the Lambda validates every parameter with pydantic (400 naming it); a request validator would duplicate the contract
  rest_api_id      = aws_api_gateway_rest_api.this.id
  resource_id      = aws_api_gateway_resource.proxy.id
  http_method      = "ANY"
  authorization    = "NONE" # checkov:skip=CKV_AWS_59:access is by API key + usage plan (api_key_required), as the product specifies
  api_key_required = true
}

resource "aws_api_gateway_integration" "proxy" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.proxy.id
  http_method             = aws_api_gateway_method.proxy.http_method
  integration_http_method = "POST"
  type                    = "AWS_PROXY"
  uri                     = module.function.invoke_arn
}

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  triggers = {
    redeploy = sha1(jsonencode([
      aws_api_gateway_resource.proxy.id, aws_api_gateway_method.proxy.id, aws_api_gateway_integration.proxy.id,
      aws_api_gateway_resource.dashboard.id, aws_api_gateway_method.dashboard.id, aws_api_gateway_integration.dashboard.id,
      [for m in aws_api_gateway_method.write : m.id], [for i in aws_api_gateway_integration.write : i.id],
    ]))
  }
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_stage" "this" {
  # checkov:skip=CKV_AWS_120:responses are per-device and fresh; a stage cache would serve stale health
  # checkov:skip=CKV2_AWS_51:clients authenticate with API keys; client certificates are for backend mTLS, not used here
  # checkov:skip=CKV2_AWS_29:WAF is an account-level choice (cost); throttling and quotas are per key in the usage plan
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  xray_tracing_enabled = true

  access_log_settings {
    destination_arn = module.access_logs.arn
    format = jsonencode({
      requestId = "$context.requestId", ip = "$context.identity.sourceIp", apiKeyId = "$context.identity.apiKeyId"
      method    = "$context.httpMethod", path = "$context.path", status = "$context.status"
      latencyMs = "$context.responseLatency", integrationMs = "$context.integration.latency"
    })
  }
  tags = var.tags
  # The account's CloudWatch role first, or a fresh account refuses the access log settings.
  depends_on = [aws_api_gateway_account.this]
}

# X-Ray's default rule (1 a second, then 5 %) traces nearly every request of an API that gets
# well under one a second: a rule of its own for this stage, when set (docs/cost.md).
resource "aws_xray_sampling_rule" "stage" {
  count          = var.xray_sampling_rate == null ? 0 : 1
  rule_name      = substr("${var.name}-api", 0, 32)
  priority       = 1000
  version        = 1
  reservoir_size = 0
  fixed_rate     = var.xray_sampling_rate
  service_name   = "${aws_api_gateway_rest_api.this.name}/${var.stage_name}"
  service_type   = "AWS::ApiGateway::Stage"
  host           = "*"
  http_method    = "*"
  url_path       = "*"
  resource_arn   = "*"
  tags           = var.tags
}

resource "aws_api_gateway_method_settings" "this" {
  # checkov:skip=CKV_AWS_225:responses are live device health; a stage cache would serve stale alarms
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"
  settings {
    metrics_enabled        = true
    logging_level          = "ERROR"
    throttling_rate_limit  = var.throttle_rate
    throttling_burst_limit = var.throttle_burst
  }
}

# API Gateway writes it with the account-wide role below (account_logging).
module "access_logs" {
  source         = "../log_group"
  name           = "/iotpm/${var.name}/api-access"
  retention_days = var.log_retention_days
  kms_key_arn    = var.kms_key_arn
  tags           = var.tags
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowApiGateway"
  action        = "lambda:InvokeFunction"
  function_name = module.function.name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.this.execution_arn}/*/*"
}

resource "aws_api_gateway_api_key" "this" {
  name    = "${var.name}-default"
  enabled = true
  tags    = var.tags
}

resource "aws_api_gateway_usage_plan" "this" {
  name = "${var.name}-default"
  api_stages {
    api_id = aws_api_gateway_rest_api.this.id
    stage  = aws_api_gateway_stage.this.stage_name
  }
  throttle_settings {
    rate_limit  = var.throttle_rate
    burst_limit = var.throttle_burst
  }
  quota_settings {
    limit  = var.quota_per_day
    period = "DAY"
  }
  tags = var.tags
}

resource "aws_api_gateway_usage_plan_key" "this" {
  key_id        = aws_api_gateway_api_key.this.id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.this.id
}

# Stage access logs and execution logs need API Gateway's account-wide CloudWatch role:
# a fresh account has none and refuses the stage ("CloudWatch Logs role ARN must be set
# in account settings"). The setting is one per account and region; where another stack
# already manages it, set manage_account_logging_role = false.
resource "aws_iam_role" "account_logging" {
  count = var.manage_account_logging_role ? 1 : 0
  name  = "${var.name}-apigw-cloudwatch"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "apigateway.amazonaws.com" }
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "account_logging" {
  count      = var.manage_account_logging_role ? 1 : 0
  role       = aws_iam_role.account_logging[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  count               = var.manage_account_logging_role ? 1 : 0
  cloudwatch_role_arn = aws_iam_role.account_logging[0].arn
  depends_on          = [aws_iam_role_policy_attachment.account_logging]
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
