"""ssmrl/replay"""
