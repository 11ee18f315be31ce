# The example plans as a user runs it (mocked AWS, any zip): one module call is a whole environment.
mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:root" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
}

variables {
  processor_zip  = "../../modules/pipeline/tests/fixture.zip"
  api_zip        = "../../modules/pipeline/tests/fixture.zip"
  compaction_zip = "../../modules/pipeline/tests/fixture.zip"
}

run "one_module_call_plans_a_whole_environment" {
  command = plan

  assert {
    condition     = module.pipeline.name_prefix == "iotpm-dev"
    error_message = "The example deploys iotpm-dev."
  }
  assert {
    condition     = module.pipeline.region == "eu-west-1"
    error_message = "The pipeline runs in the provider's region."
  }
  assert {
    condition     = module.pipeline.processor_environment["IOTPM_READINGS_TABLE"] == "iotpm-dev-readings"
    error_message = "The processor is configured with the tables the module creates."
  }
}
