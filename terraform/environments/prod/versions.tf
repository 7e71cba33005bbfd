terraform {
  # >= 1.11: write-only arguments keep the generated passwords out of the state (modules/compute,
  # modules/sources); S3-native state locking (use_lockfile, >= 1.10) needs no DynamoDB lock table.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
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
