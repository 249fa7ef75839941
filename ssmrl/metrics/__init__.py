"""ssmrl/metrics"""
