"""ssmrl/runs"""
