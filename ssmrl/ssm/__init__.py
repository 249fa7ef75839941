"""ssmrl/ssm"""
