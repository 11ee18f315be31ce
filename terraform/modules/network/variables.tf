variable "name" {
  type        = string
  description = "Name prefix for every resource (project-environment)."
}

variable "cidr_block" {
  type        = string
  description = "CIDR of the VPC."

  validation {
    condition     = can(cidrnetmask(var.cidr_block)) && tonumber(split("/", var.cidr_block)[1]) <= 24
    error_message = "cidr_block must be a valid IPv4 CIDR of /24 or larger (e.g. 10.40.0.0/16)."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "At least two availability zones for the private subnets."

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Give at least two availability zones so the Lambdas survive the loss of one."
  }
}

variable "endpoint_az_count" {
  type        = number
  description = "Availability zones (the first n of availability_zones) that get an interface endpoint's network interfaces; null: all. Each endpoint costs per AZ-hour; a Lambda in another AZ reaches them across AZs through the same private DNS name. Two keep the endpoints up through the loss of one AZ."

  validation {
    condition     = var.endpoint_az_count == null ? true : (floor(var.endpoint_az_count) == var.endpoint_az_count && var.endpoint_az_count >= 2 && var.endpoint_az_count <= length(var.availability_zones))
    error_message = "endpoint_az_count must be null (all) or a whole number from 2 to the number of availability_zones, so the endpoints survive the loss of one AZ."
  }
}

variable "interface_endpoints" {
  type        = list(string)
  description = "AWS services reached through interface endpoints (there is no internet egress), e.g. kinesis-streams, sns."
  default     = ["kinesis-streams", "sns", "sqs", "logs", "monitoring"]
}

variable "flow_logs_retention_days" {
  type        = number
  description = "Retention of the VPC flow log group, in days."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key that encrypts the flow log group."
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
