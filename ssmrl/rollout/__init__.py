"""ssmrl/rollout"""
