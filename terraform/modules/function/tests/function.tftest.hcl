# Offline tests of the Lambda function module (mocked AWS provider): no managed policy, the
# network interfaces only in the function's own subnets.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:root" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/iotpm-test-fn" }
  }
}

variables {
  name               = "iotpm-test-fn"
  description        = "test"
  zip_path           = "../pipeline/tests/fixture.zip"
  handler            = "iotpm.handlers.api.handler"
  policy_json        = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  subnet_ids         = ["subnet-1", "subnet-2"]
  security_group_ids = ["sg-1"]
  kms_key_arn        = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
}

run "network_interfaces_only_in_its_subnets_and_no_managed_policy" {
  command = apply

  assert {
    condition = one([for s in jsondecode(output.eni_policy).Statement : s.Resource if s.Action == ["ec2:CreateNetworkInterface"]]) == [
      "arn:aws:ec2:eu-west-1:123456789012:network-interface/*",
      "arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-1",
      "arn:aws:ec2:eu-west-1:123456789012:subnet/subnet-2",
      "arn:aws:ec2:eu-west-1:123456789012:security-group/sg-1",
    ]
    error_message = "Interfaces are created only in the function's subnets, with its security groups."
  }
  assert {
    condition = alltrue([for s in jsondecode(output.eni_policy).Statement :
    s.Resource == ["*"] ? toset(s.Action) == toset(["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]) : alltrue([for r in s.Resource : startswith(r, "arn:aws:ec2:eu-west-1:123456789012:")])])
    error_message = "Only the Describe calls (which have no resource) use \"*\"; the rest stay in this account and region."
  }
  assert {
    condition     = !anytrue([for s in jsondecode(output.eni_policy).Statement : anytrue([for a in s.Action : startswith(a, "logs:")])])
    error_message = "No logs:* on every log group (the managed policy's): the function writes only to its own."
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.logs.policy).Statement[0].Resource == "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/iotpm-test-fn:*"
    error_message = "Logs only to the function's own log group."
  }
}
