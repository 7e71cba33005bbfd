output "vpc_id" {
  description = "Id of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets (NAT gateways; ECS tasks when nat_gateway = false)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets for ECS tasks, RDS, MSK, MSK Connect and EMR Serverless."
  value       = aws_subnet.private[*].id
}

output "security_group_ids" {
  description = "Security group id per component: dagster, database, kafka, connect, spark."
  value       = { for k, sg in aws_security_group.this : k => sg.id }
}

output "task_subnet_ids" {
  description = "Subnets for ECS tasks: private behind the NAT gateway, or public (with a public IP) without one."
  value       = var.nat_gateway ? aws_subnet.private[*].id : aws_subnet.public[*].id
}

output "tasks_need_public_ip" {
  description = "True when tasks run in the public subnets and need assign_public_ip to reach AWS APIs (no NAT gateway)."
  value       = !var.nat_gateway
}
