terraform {
  # >= 1.10 for S3-native state locking (use_lockfile); no DynamoDB lock table needed.
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6, < 4.0"
    }
  }

  # Partial configuration: bucket/key/region/kms_key_id come from backend.hcl
  # (terraform init -backend-config=backend.hcl); see backend.hcl.example and docs/deploy.md.
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}

provider "aws" {
  region = var.aws_region
  default_tags {
    tags = local.tags
  }
}
