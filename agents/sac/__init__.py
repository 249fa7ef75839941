"""agents/sac"""
