# Alert routing. Machine alarms (the processor's raises and clears, and the report's
# summary) have their own topic; pipeline alarms stay on the observability topic.
# Each route subscribes one endpoint to one topic with an SNS filter policy on the
# message attributes the SNS adapter sets (site, line, severity, event), so a line's
# chat channel sees only its line, and an on-call pager only what is critical.

resource "aws_sns_topic" "machine" {
  name              = "${var.name}-machine-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

locals {
  topics = { machine = aws_sns_topic.machine.arn, pipeline = var.pipeline_topic_arn }
  filters = { for k, r in var.routes : k => { for attr, values in {
    site = r.sites, line = r.lines, severity = r.severities, event = r.events
  } : attr => values if length(values) > 0 } }
  queues = { for k, r in var.routes : k => r if r.protocol == "sqs" }
}

resource "aws_sqs_queue" "route" {
  for_each                          = local.queues
  name                              = "${var.name}-alerts-${each.key}"
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 3600
  message_retention_seconds         = 1209600
  tags                              = var.tags
}

resource "aws_sqs_queue_policy" "route" {
  for_each  = local.queues
  queue_url = aws_sqs_queue.route[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "FromItsTopic"
      Effect    = "Allow"
      Principal = { Service = "sns.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.route[each.key].arn
      Condition = { ArnEquals = { "aws:SourceArn" = local.topics[each.value.topic] } }
    }]
  })
}

# An endpoint that carries a secret (a chat webhook URL with its token) is not written in
# terraform.tfvars: it is read from an SSM SecureString parameter (endpoint_ssm_parameter) or
# given in the sensitive route_secrets variable (secret = true), and Terraform never prints it.
data "aws_ssm_parameter" "route" {
  for_each        = { for k, r in var.routes : k => r.endpoint_ssm_parameter if r.endpoint_ssm_parameter != "" }
  name            = each.value
  with_decryption = true
}

locals {
  endpoints = { for k, r in var.routes : k => (
    r.protocol == "sqs" ? "" :
    r.endpoint_ssm_parameter != "" ? data.aws_ssm_parameter.route[k].value :
    r.secret ? lookup(var.route_secrets, k, "") :
    replace(r.endpoint, "{local_webhook}", var.local_webhook_url)
  ) }
}

resource "aws_sns_topic_subscription" "route" {
  for_each             = var.routes
  topic_arn            = local.topics[each.value.topic]
  protocol             = each.value.protocol
  endpoint             = each.value.protocol == "sqs" ? aws_sqs_queue.route[each.key].arn : local.endpoints[each.key]
  filter_policy        = length(local.filters[each.key]) > 0 ? jsonencode(local.filters[each.key]) : null
  filter_policy_scope  = length(local.filters[each.key]) > 0 ? "MessageAttributes" : null
  raw_message_delivery = each.value.protocol == "sqs"

  lifecycle {
    precondition {
      condition     = each.value.protocol == "sqs" || local.endpoints[each.key] != ""
      error_message = "This route's endpoint is empty: give endpoint, endpoint_ssm_parameter, or (secret = true) an entry in route_secrets."
    }
    precondition {
      condition     = each.value.protocol != "https" || startswith(local.endpoints[each.key], "https://")
      error_message = "An https route's endpoint must be an https:// URL."
    }
  }
}
