# Offline tests of the alert routes (mocked AWS provider).

mock_provider "aws" {
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:123456789012:machine" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:123456789012:q", url = "https://sqs.eu-west-1.amazonaws.com/123456789012/q" }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "https://chat.example/hooks/line-2?token=from-ssm" }
  }
}

variables {
  name               = "iotpm-test"
  kms_key_arn        = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
  pipeline_topic_arn = "arn:aws:sns:eu-west-1:123456789012:pipeline"
  local_webhook_url  = "http://127.0.0.1:9999"
  allow_http         = true # as the local environment sets it (its webhook receiver)
  route_secrets      = {}
  routes = {
    line-1-critical = { topic = "machine", protocol = "https", endpoint = "https://chat.example/hook", lines = ["line-1"], severities = ["critical"] }
    plant-2         = { topic = "machine", protocol = "email", endpoint = "plant2@example.com", sites = ["plant-2"] }
    pager           = { topic = "machine", protocol = "sqs", severities = ["critical"], events = ["alarm_raised"] }
    pipeline        = { topic = "pipeline", protocol = "http", endpoint = "{local_webhook}/hooks/pipeline" }
  }
}

run "routes_filter_by_site_line_severity_and_event" {
  command = apply

  assert {
    condition     = jsondecode(aws_sns_topic_subscription.route["line-1-critical"].filter_policy) == { line = ["line-1"], severity = ["critical"] }
    error_message = "A line's critical route filters on line and severity only."
  }
  assert {
    condition     = jsondecode(aws_sns_topic_subscription.route["pager"].filter_policy) == { severity = ["critical"], event = ["alarm_raised"] }
    error_message = "Event filters too."
  }
  assert {
    condition     = aws_sns_topic_subscription.route["pipeline"].filter_policy == null && aws_sns_topic_subscription.route["pipeline"].topic_arn == "arn:aws:sns:eu-west-1:123456789012:pipeline"
    error_message = "A route with no filter gets everything on its topic."
  }
  assert {
    condition     = aws_sns_topic_subscription.route["pipeline"].endpoint == "http://127.0.0.1:9999/hooks/pipeline"
    error_message = "{local_webhook} is the twin's receiver."
  }
  assert {
    condition     = keys(aws_sqs_queue.route) == ["pager"] && aws_sns_topic_subscription.route["pager"].raw_message_delivery
    error_message = "Only sqs routes get a queue (raw delivery keeps the attributes)."
  }
  assert {
    condition     = aws_sns_topic.machine.name == "iotpm-test-machine-alarms"
    error_message = "Machine alarms have their own topic."
  }
}

run "a_route_without_an_endpoint_is_refused" {
  command = plan
  variables {
    routes = { broken = { topic = "machine", protocol = "https" } }
  }
  expect_failures = [var.routes]
}

run "an_unknown_topic_is_refused" {
  command = plan
  variables {
    routes = { broken = { topic = "everything", protocol = "sqs" } }
  }
  expect_failures = [var.routes]
}

run "plain_http_is_refused_outside_the_local_environment" {
  command = plan
  variables {
    allow_http = false
  }
  expect_failures = [var.routes]
}

run "an_https_route_needs_an_https_url" {
  command = plan
  variables {
    routes = { chat = { topic = "machine", protocol = "https", endpoint = "http://chat.example/hook" } }
  }
  expect_failures = [var.routes]
}

run "endpoints_with_secrets_come_from_ssm_or_a_sensitive_variable" {
  command = apply
  variables {
    allow_http = false
    routes = {
      line-1 = { topic = "machine", protocol = "https", secret = true, lines = ["line-1"] }
      line-2 = { topic = "machine", protocol = "https", endpoint_ssm_parameter = "/iotpm/test/line-2-webhook", lines = ["line-2"] }
    }
    route_secrets = { line-1 = "https://chat.example/hooks/line-1?token=from-variable" }
  }

  assert {
    condition     = nonsensitive(aws_sns_topic_subscription.route["line-1"].endpoint) == "https://chat.example/hooks/line-1?token=from-variable"
    error_message = "secret = true takes the endpoint from the sensitive route_secrets."
  }
  assert {
    condition     = nonsensitive(aws_sns_topic_subscription.route["line-2"].endpoint) == "https://chat.example/hooks/line-2?token=from-ssm" && data.aws_ssm_parameter.route["line-2"].with_decryption
    error_message = "endpoint_ssm_parameter takes the endpoint from the (decrypted) SSM parameter."
  }
}

run "a_secret_route_without_its_secret_is_refused" {
  command = plan
  variables {
    allow_http = false
    routes     = { line-1 = { topic = "machine", protocol = "https", secret = true } }
  }
  expect_failures = [aws_sns_topic_subscription.route["line-1"]]
}
