# A VPC with private subnets only: the Lambdas reach AWS through endpoints, never the internet.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

resource "aws_vpc" "this" {
  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(var.tags, { Name = var.name })
}

resource "aws_subnet" "private" {
  count                   = length(var.availability_zones)
  vpc_id                  = aws_vpc.this.id
  availability_zone       = var.availability_zones[count.index]
  cidr_block              = cidrsubnet(var.cidr_block, 4, count.index)
  map_public_ip_on_launch = false
  tags                    = merge(var.tags, { Name = "${var.name}-private-${var.availability_zones[count.index]}" })
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-private" })
}

resource "aws_route_table_association" "private" {
  count          = length(aws_subnet.private)
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# The default security group allows nothing (CIS 5.4).
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-default-deny" })
}

resource "aws_security_group" "lambda" {
  # checkov:skip=CKV2_AWS_5:attached to both Lambdas through the processor and api modules (checkov cannot follow module outputs)
  name        = "${var.name}-lambda"
  description = "iotpm Lambdas: HTTPS to AWS endpoints inside the VPC only"
  vpc_id      = aws_vpc.this.id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "lambda_https_vpc" {
  security_group_id = aws_security_group.lambda.id
  description       = "HTTPS to interface endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.cidr_block
}

resource "aws_vpc_security_group_egress_rule" "lambda_https_gateways" {
  for_each          = aws_vpc_endpoint.gateway
  security_group_id = aws_security_group.lambda.id
  description       = "HTTPS to the ${each.key} gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = each.value.prefix_list_id
}

resource "aws_security_group" "endpoints" {
  name        = "${var.name}-endpoints"
  description = "Interface endpoints: HTTPS from the iotpm Lambdas"
  vpc_id      = aws_vpc.this.id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_lambda" {
  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the Lambdas"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.lambda.id
}

# Endpoint policies: through these endpoints only this account's principals reach AWS, and
# through the gateways only this environment's buckets and tables (names start with var.name),
# so code in the VPC cannot copy data to another account's bucket or table.
locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  this_account = {
    StringEquals = { "aws:PrincipalAccount" = local.account }
  }
  gateway_resources = {
    s3       = ["arn:${local.partition}:s3:::${var.name}-*", "arn:${local.partition}:s3:::${var.name}-*/*"]
    dynamodb = ["arn:${local.partition}:dynamodb:${data.aws_region.current.name}:${local.account}:table/${var.name}-*"]
  }
  endpoint_policies = merge(
    { for svc, resources in local.gateway_resources : svc => jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Sid       = "ThisEnvironmentsData", Effect = "Allow", Principal = "*", Action = "${svc}:*", Resource = resources,
        Condition = local.this_account
      }]
    }) },
    { for svc in var.interface_endpoints : svc => jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Sid       = "ThisAccountsPrincipals", Effect = "Allow", Principal = "*", Action = "*", Resource = "*",
        Condition = local.this_account
      }]
    }) },
  )
}

resource "aws_vpc_endpoint" "gateway" {
  for_each          = local.gateway_resources
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.${each.key}"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  policy            = local.endpoint_policies[each.key]
  tags              = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_vpc_endpoint" "interface" {
  for_each            = toset(var.interface_endpoints)
  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${data.aws_region.current.name}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = slice(aws_subnet.private[*].id, 0, coalesce(var.endpoint_az_count, length(var.availability_zones)))
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true
  policy              = local.endpoint_policies[each.key]
  tags                = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

resource "aws_flow_log" "this" {
  vpc_id               = aws_vpc.this.id
  traffic_type         = "REJECT"
  log_destination_type = "cloud-watch-logs"
  log_destination      = module.flow_logs.arn
  iam_role_arn         = module.flow_logs.writer_role_arn
  tags                 = var.tags
}

module "flow_logs" {
  source         = "../log_group"
  name           = "/iotpm/${var.name}/vpc-flow"
  retention_days = var.flow_logs_retention_days
  kms_key_arn    = var.kms_key_arn
  writer = {
    service     = "vpc-flow-logs.amazonaws.com"
    role_name   = "${var.name}-vpc-flow"
    policy_name = "write-flow-logs"
    actions     = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    source_arn  = "arn:${data.aws_partition.current.partition}:ec2:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:vpc-flow-log/*"
  }
  tags = var.tags
}
