terraform {
  required_version = ">= 1.9" # validations that name another variable
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}
