"""ssmrl/kernels"""
