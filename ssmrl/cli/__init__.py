"""ssmrl/cli"""
