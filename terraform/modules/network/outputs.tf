output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets the Lambdas run in."
  value       = aws_subnet.private[*].id
}

output "lambda_security_group_id" {
  description = "Security group for the Lambdas (HTTPS to endpoints only)."
  value       = aws_security_group.lambda.id
}

output "interface_endpoints" {
  description = "Interface endpoint IDs by service."
  value       = { for k, v in aws_vpc_endpoint.interface : k => v.id }
}

output "flow_logs_role_trust" {
  description = "Trust policy of the role VPC flow logs assume."
  value       = module.flow_logs.writer_role_trust
}

output "gateway_endpoints" {
  description = "Services reached through gateway endpoints."
  value       = sort(keys(aws_vpc_endpoint.gateway))
}

output "endpoint_policies" {
  description = "The policy of each endpoint (gateway and interface), by service."
  value       = local.endpoint_policies
}

output "endpoint_subnet_ids" {
  description = "Private subnets holding the interface endpoints' network interfaces (the first endpoint_az_count)."
  value       = slice(aws_subnet.private[*].id, 0, coalesce(var.endpoint_az_count, length(var.availability_zones)))
}
