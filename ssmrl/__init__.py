"""ssmrl"""
