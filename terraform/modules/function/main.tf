# One Lambda function in the VPC with its own role, log group and least-privilege policy.

data "aws_partition" "current" {}

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_272:code signing needs a signing profile per organisation; the zip's sha256 is pinned instead
  function_name                  = var.name
  description                    = var.description
  role                           = aws_iam_role.this.arn
  runtime                        = "python3.12"
  handler                        = var.handler
  architectures                  = [var.architecture]
  filename                       = var.zip_path
  source_code_hash               = filebase64sha256(var.zip_path)
  memory_size                    = var.memory_mb
  timeout                        = var.timeout_s
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = var.environment
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  tracing_config {
    mode = "Active"
  }

  dynamic "dead_letter_config" {
    for_each = var.dead_letter_arn == "" ? [] : [var.dead_letter_arn]
    content {
      target_arn = dead_letter_config.value
    }
  }

  tags = var.tags
  # The log group exists (with retention and KMS) before the first invocation could create it.
  depends_on = [aws_iam_role_policy.this, aws_iam_role_policy_attachment.vpc, aws_cloudwatch_log_group.this]
}

resource "aws_cloudwatch_log_group" "this" {
  # checkov:skip=CKV_AWS_338:retention is the log_retention_days variable (365 in prod); dev and local keep days, not a year
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_iam_role" "this" {
  name = var.name
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "lambda.amazonaws.com" } }]
  })
  tags = var.tags
}

# ENIs in the VPC (AWS-managed; the function cannot run in a VPC without it).
resource "aws_iam_role_policy_attachment" "vpc" {
  role       = aws_iam_role.this.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_iam_role_policy" "this" {
  name   = "least-privilege"
  role   = aws_iam_role.this.id
  policy = var.policy_json
}

resource "aws_iam_role_policy" "logs" {
  name = "own-log-group"
  role = aws_iam_role.this.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["logs:CreateLogStream", "logs:PutLogEvents"], Resource = "${aws_cloudwatch_log_group.this.arn}:*" },
      { Effect = "Allow", Action = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], Resource = "*" },
    ]
  })
}
