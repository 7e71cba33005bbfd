# One security group per component; rules reference groups, not CIDRs, wherever possible. Every
# group is egress-only except the servers' (database, kafka): nothing in this VPC accepts
# connections from outside it, public IPs or not.
#   dagster  : ECS tasks (the always-on service task: Dagster webserver/daemon/code server and the
#              CDC containers; the run tasks)
#   database : RDS PostgreSQL holding Dagster's storage (and the Debezium offsets of the publisher)
#   kafka    : MSK Serverless cluster (IAM auth, port 9098)          - only with enable_msk
#   connect  : MSK Connect workers (Debezium)                        - only with enable_msk
#   spark    : EMR Serverless jobs
locals {
  all_security_groups = {
    dagster  = "Lakehouse ECS tasks (Dagster, CDC publisher and sink, runs)"
    database = "RDS PostgreSQL for Dagster storage and the CDC publisher offsets"
    kafka    = "MSK Serverless cluster (SASL/IAM on 9098)"
    connect  = "MSK Connect workers running Debezium"
    spark    = "EMR Serverless Spark jobs"
  }
  msk_groups      = toset(["kafka", "connect"])
  security_groups = { for k, v in local.all_security_groups : k => v if var.enable_msk || !contains(local.msk_groups, k) }

  # Outbound HTTPS to AWS APIs (through the NAT gateway, the public IP of a task, or the gateway endpoints).
  https_egress_groups = toset([for g in ["dagster", "connect", "spark"] : g if contains(keys(local.security_groups), g)])
  kafka_client_groups = var.enable_msk ? toset(["dagster", "connect", "spark"]) : toset([])
  oltp_client_groups  = toset([for g in ["dagster", "connect"] : g if contains(keys(local.security_groups), g)])
  oltp_rules = {
    for pair in setproduct(tolist(local.oltp_client_groups), var.oltp_source_cidrs) : "${pair[0]}-${pair[1]}" => {
      group = pair[0]
      cidr  = pair[1]
    }
  }
}

resource "aws_security_group" "this" {
  #checkov:skip=CKV2_AWS_5:Attached outside this module (ECS services, RDS, MSK, MSK Connect, EMR Serverless) through the security_group_ids output; checkov cannot follow a map output across modules.
  for_each    = local.security_groups
  name        = "${var.name_prefix}-${each.key}"
  description = each.value
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name_prefix}-${each.key}" })
}

resource "aws_vpc_security_group_egress_rule" "https" {
  for_each          = local.https_egress_groups
  security_group_id = aws_security_group.this[each.key].id
  description       = "HTTPS to AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# --- Kafka (MSK IAM listener 9098), scale profile only
resource "aws_vpc_security_group_ingress_rule" "kafka_from_clients" {
  for_each                     = local.kafka_client_groups
  security_group_id            = aws_security_group.this["kafka"].id
  referenced_security_group_id = aws_security_group.this[each.key].id
  description                  = "Kafka SASL/IAM from ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = 9098
  to_port                      = 9098
}

resource "aws_vpc_security_group_egress_rule" "clients_to_kafka" {
  for_each                     = local.kafka_client_groups
  security_group_id            = aws_security_group.this[each.key].id
  referenced_security_group_id = aws_security_group.this["kafka"].id
  description                  = "Kafka SASL/IAM to MSK"
  ip_protocol                  = "tcp"
  from_port                    = 9098
  to_port                      = 9098
}

# --- Dagster storage database (also the CDC publisher's offset store)
resource "aws_vpc_security_group_ingress_rule" "database_from_dagster" {
  security_group_id            = aws_security_group.this["database"].id
  referenced_security_group_id = aws_security_group.this["dagster"].id
  description                  = "PostgreSQL from the lakehouse tasks"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_vpc_security_group_egress_rule" "dagster_to_database" {
  security_group_id            = aws_security_group.this["dagster"].id
  referenced_security_group_id = aws_security_group.this["database"].id
  description                  = "PostgreSQL to the Dagster storage database"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

# --- OLTP source PostgreSQL (outside this VPC or in a peered one)
resource "aws_vpc_security_group_egress_rule" "oltp" {
  for_each          = local.oltp_rules
  security_group_id = aws_security_group.this[each.value.group].id
  description       = "PostgreSQL to the OLTP source"
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
  cidr_ipv4         = each.value.cidr
}
