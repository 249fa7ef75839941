"""ssmrl/world_models"""
