# One Lambda function in the VPC with its own role, log group and least-privilege policy.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

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

  # in the VPC (private subnets, endpoints), or outside it when in_vpc is false: then the function
  # reaches AWS's public endpoints (IAM, TLS) and has no interface in, nor path to, the VPC
  dynamic "vpc_config" {
    for_each = var.in_vpc ? [1] : []
    content {
      subnet_ids         = var.subnet_ids
      security_group_ids = var.security_group_ids
    }
  }

  tracing_config {
    mode = var.tracing_mode
  }

  dynamic "dead_letter_config" {
    for_each = var.dead_letter_arn == "" ? [] : [var.dead_letter_arn]
    content {
      target_arn = dead_letter_config.value
    }
  }

  tags = var.tags
  # The log group exists (with retention and KMS) before the first invocation could create it.
  depends_on = [aws_iam_role_policy.this, aws_iam_role_policy.eni, module.log_group]
}

# Written by the function's own role (the own-log-group policy below).
module "log_group" {
  source         = "../log_group"
  name           = "/aws/lambda/${var.name}"
  retention_days = var.log_retention_days
  kms_key_arn    = var.kms_key_arn
  tags           = var.tags
}

resource "aws_iam_role" "this" {
  name = var.name
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "lambda.amazonaws.com" } }]
  })
  tags = var.tags
}

# The function's network interfaces in its VPC: what the managed AWSLambdaVPCAccessExecutionRole
# grants, minus its logs:* on every log group (the function writes only its own, below), and
# with interfaces created only in the given subnets with the given security groups.
locals {
  ec2_arn = "arn:${data.aws_partition.current.partition}:ec2:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
  eni_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "CreateInterfacesInItsSubnets"
        Effect = "Allow"
        Action = ["ec2:CreateNetworkInterface"]
        Resource = concat(
          ["${local.ec2_arn}:network-interface/*"],
          [for id in var.subnet_ids : "${local.ec2_arn}:subnet/${id}"],
          [for id in var.security_group_ids : "${local.ec2_arn}:security-group/${id}"],
        )
      },
      {
        # Lambda names no interface id in advance; these act on this account's and region's only
        Sid      = "ManageItsInterfaces"
        Effect   = "Allow"
        Action   = ["ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
        Resource = ["${local.ec2_arn}:network-interface/*"]
      },
      # EC2 defines no resource for these (Resource "*" is the only form AWS accepts)
      { Sid = "DescribeNetwork", Effect = "Allow", Action = ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], Resource = ["*"] },
    ]
  })
}

resource "aws_iam_role_policy" "eni" {
  count  = var.in_vpc ? 1 : 0
  name   = "vpc-interfaces"
  role   = aws_iam_role.this.id
  policy = local.eni_policy
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
      { Effect = "Allow", Action = ["logs:CreateLogStream", "logs:PutLogEvents"], Resource = "${module.log_group.arn}:*" },
      { Effect = "Allow", Action = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], Resource = "*" },
    ]
  })
}
