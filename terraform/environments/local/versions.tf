terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }
  # Local state on purpose: the emulator is disposable.
}

# Every service the local environment touches points at the emulator on :4566 (LocalStack, or the
# moto server of the embedded stack / docker-compose). Works with plain `terraform` (credentials
# from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY=test) and with `tflocal`, which sets the same.
provider "aws" {
  region                      = var.aws_region
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  s3_use_path_style           = true

  endpoints {
    athena         = var.endpoint
    dynamodb       = var.endpoint
    glue           = var.endpoint
    iam            = var.endpoint
    kms            = var.endpoint
    logs           = var.endpoint
    s3             = var.endpoint
    secretsmanager = var.endpoint
    sts            = var.endpoint
  }

  default_tags {
    tags = { Project = "ecommerce-lakehouse", Environment = "local", ManagedBy = "terraform" }
  }
}
